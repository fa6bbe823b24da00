package mam

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
	"github.com/xmppd/xmppd/xmpp/rsm"
)

// A Query is an archive query (XEP-0313 §4) as ParseQuery reads it.
type Query struct {
	// ID is the client's queryid, repeated in every result.
	ID string
	// Archive selects the page.
	Archive storage.ArchiveQuery
	// Flip asks for the page's messages newest first (<flip-page/>).
	Flip bool
}

// stampLayout is XEP-0082's DateTime as the server writes it.
const stampLayout = "2006-01-02T15:04:05.000000Z"

// QueryForm is the form that says which fields a query may have (XEP-0313
// §4.1.5; before-id, after-id and ids are urn:xmpp:mam:2#extended).
func QueryForm() *form.Form {
	fm := &form.Form{Type: form.TypeForm, FormType: NS}
	fm.AddField(form.Field{Var: "with", Type: form.JIDSingle, Label: "With"})
	fm.AddField(form.Field{Var: "start", Type: form.TextSingle, Label: "From (XEP-0082 date and time)"})
	fm.AddField(form.Field{Var: "end", Type: form.TextSingle, Label: "Until (XEP-0082 date and time)"})
	fm.AddField(form.Field{Var: "before-id", Type: form.TextSingle, Label: "Before the message with this id"})
	fm.AddField(form.Field{Var: "after-id", Type: form.TextSingle, Label: "After the message with this id"})
	fm.AddField(form.Field{Var: "ids", Type: form.TextMulti, Label: "Only the messages with these ids"})
	return fm
}

// ParseQuery reads a <query xmlns='urn:xmpp:mam:2'/>: its form (with,
// start, end, before-id, after-id, ids), its Result Set Management <set/>
// (max, after, before; a <max/> above maxPage is refused with
// <policy-violation/>, none gives DefaultPage or maxPage if smaller) and
// <flip-page/>. Errors are xmpp.StanzaErrors, to send as they are.
func ParseQuery(q *xmpp.Element, maxPage int) (Query, error) {
	out := Query{ID: q.Get("queryid")}
	bad := func(text string) (Query, error) {
		return Query{}, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: text}
	}
	if x := q.Child(form.NS, "x"); x != nil {
		fm, err := form.Parse(x)
		if err != nil || (fm.Type != form.TypeSubmit && fm.Type != "") {
			return bad("the query's form is not a submitted data form")
		}
		if fm.FormType != "" && fm.FormType != NS {
			return bad("the query's form is not of " + NS)
		}
		for _, f := range fm.Fields {
			v := strings.TrimSpace(f.Value())
			switch f.Var {
			case "with":
				if v == "" {
					continue
				}
				j, err := jid.Parse(v)
				if err != nil {
					return bad("with is not a JID")
				}
				// The archive keeps the bare JID of the other party.
				out.Archive.With = j.Bare().String()
			case "start", "end":
				if v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return bad(f.Var + " is not a XEP-0082 date and time")
				}
				if f.Var == "start" {
					out.Archive.Start = t.UTC()
				} else {
					out.Archive.End = t.UTC()
				}
			case "before-id":
				out.Archive.BeforeID = v
			case "after-id":
				out.Archive.AfterID = v
			case "ids":
				for _, id := range f.Values {
					if id = strings.TrimSpace(id); id != "" {
						out.Archive.IDs = append(out.Archive.IDs, id)
					}
				}
				if len(out.Archive.IDs) == 0 {
					return bad("ids has no id")
				}
			default:
				return bad("the field " + f.Var + " is not supported")
			}
		}
	}
	if !out.Archive.Start.IsZero() && !out.Archive.End.IsZero() && out.Archive.End.Before(out.Archive.Start) {
		return bad("end is before start")
	}
	req, _, err := rsm.Parse(q.Child(rsm.NS, "set"))
	if err != nil {
		return bad("the result set's max or index is not a number")
	}
	if req.Index >= 0 {
		return Query{}, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented, Text: "paging by index is not supported; use after and before"}
	}
	switch {
	case !req.HasMax:
		out.Archive.Max = min(DefaultPage, maxPage)
	case req.Max > maxPage:
		return Query{}, xmpp.StanzaError{Condition: xmpp.PolicyViolationCond, Text: "a page holds at most " + strconv.Itoa(maxPage) + " messages"}
	default:
		out.Archive.Max = req.Max
	}
	// RSM's after and before page within what the form's after-id and
	// before-id select: the narrower bound of each kind wins.
	if req.HasAfter && req.After != "" && req.After > out.Archive.AfterID {
		out.Archive.AfterID = req.After
	}
	if req.HasBefore && req.Before != "" && (out.Archive.BeforeID == "" || req.Before < out.Archive.BeforeID) {
		out.Archive.BeforeID = req.Before
	}
	out.Archive.Last = req.HasBefore
	out.Flip = q.Child(NS, "flip-page") != nil
	return out, nil
}

// ResultMessage is the message that carries one archived message to the
// requester to (XEP-0313 §4.2): from the archive's JID, the message
// forwarded (XEP-0297) with the time it was archived (XEP-0203).
func ResultMessage(from, to, queryID string, msg storage.ArchivedMessage) (*xmpp.Element, error) {
	orig, err := xmpp.ParseStanza(msg.Data)
	if err != nil {
		return nil, err
	}
	res := xmpp.NewElement(NS, "result", "id", msg.ID)
	res.Set("queryid", queryID)
	fwd := xmpp.NewElement(NSForward, "forwarded").Add(
		xmpp.NewElement(NSDelay, "delay", "stamp", msg.Time.UTC().Format(stampLayout)),
		orig,
	)
	return xmpp.NewElement(xmpp.NSClient, "message", "from", from, "to", to).Add(res.Add(fwd)), nil
}

// Fin is the IQ result that ends a query's results (XEP-0313 §4.3): whether
// the page is the last one in the direction of paging, and the ids of its
// first and last messages in archive order, whatever the order they were
// sent in (Flip), so that a client pages on with after and before alike.
func Fin(page storage.ArchivePage) *xmpp.Element {
	fin := xmpp.NewElement(NS, "fin")
	if page.Complete {
		fin.Set("complete", "true")
	}
	res := rsm.Result{Index: -1, Count: -1}
	if n := len(page.Messages); n > 0 {
		res.First, res.Last = page.Messages[0].ID, page.Messages[n-1].ID
	}
	return fin.Add(res.Element())
}

// Select asks the store for the page q selects of owner's archive. A
// <max>0</max> returns no message, and whether there are any (XEP-0059
// §2.7), where the store reads a Max of 0 as no limit. Its errors are
// those the XEP asks for (QueryError).
func Select(ctx context.Context, a storage.Archive, owner string, q Query) (storage.ArchivePage, error) {
	aq := q.Archive
	none := aq.Max == 0
	if none {
		aq.Max = 1
	}
	page, err := a.QueryArchive(ctx, owner, aq)
	if err != nil {
		return page, QueryError(err)
	}
	if none {
		page.Complete = len(page.Messages) == 0
		page.Messages = nil
	}
	return page, nil
}

// QueryError maps a storage error of QueryArchive to the error the XEP
// asks for: an id that is not in the archive is <item-not-found/> (§6.1).
func QueryError(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "no message in the archive has that id"}
	}
	return err
}

// query answers a query of the account's own archive: the results, then
// the <fin/>.
func (m *Module) query(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	if node := iq.Payload.Get("node"); node != "" {
		return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "an account's archive has no nodes"}
	}
	q, err := ParseQuery(iq.Payload, DefaultMaxPage)
	if err != nil {
		return nil, err
	}
	owner := iq.To.Bare().String()
	if err := m.w.flush(ctx); err != nil {
		return nil, err
	}
	page, err := Select(ctx, m.Store, owner, q)
	if err != nil {
		return nil, err
	}
	msgs := page.Messages
	if q.Flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	to := iq.Session.JID().String()
	for _, msg := range msgs {
		el, err := ResultMessage(owner, to, q.ID, msg)
		if err != nil {
			m.log.Warn("archived message does not parse; skipped", "jid", owner, "id", msg.ID, "err", err)
			continue
		}
		m.srv.Router().Deliver(ctx, el)
	}
	return Fin(page), nil
}

// form answers a query get with the fields a query may have (§4.1.5).
func (m *Module) form(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	return xmpp.NewElement(NS, "query").Add(QueryForm().Element()), nil
}

// metadata answers <metadata/> (XEP-0313 §5.4 of v1.1): the first and
// last message of the archive; an empty <metadata/> for an empty one.
func (m *Module) metadata(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	if err := m.w.flush(ctx); err != nil {
		return nil, err
	}
	owner := iq.To.Bare().String()
	md := xmpp.NewElement(NS, "metadata")
	for _, end := range []struct {
		name string
		last bool
	}{{"start", false}, {"end", true}} {
		page, err := m.Store.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: 1, Last: end.last})
		if err != nil {
			return nil, err
		}
		if len(page.Messages) == 0 {
			return md, nil
		}
		msg := page.Messages[0]
		md.Add(xmpp.NewElement(NS, end.name, "id", msg.ID, "timestamp", msg.Time.UTC().Format(stampLayout)))
	}
	return md, nil
}

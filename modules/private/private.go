package private

import (
	"context"
	"errors"
	"fmt"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// NS is the namespace of XEP-0049.
const NS = "jabber:iq:private"

// DefaultMaxBytes bounds one stored element when Module.MaxBytes is zero.
const DefaultMaxBytes = 64 << 10

// DefaultMaxElements bounds how many elements one account stores when
// Module.MaxElements is zero: clients keep a handful (bookmarks, roster
// notes, their own preferences).
const DefaultMaxElements = 100

// Module answers private storage requests of accounts.
type Module struct {
	// Store keeps the elements.
	Store storage.XMLDocs
	// MaxBytes bounds one serialised element: zero selects
	// DefaultMaxBytes, a negative value means no limit (the stanza size
	// limit still holds).
	MaxBytes int
	// MaxElements bounds how many elements (namespace and name) one
	// account stores, its vCard (storage.XMLDocs keeps both) included:
	// zero selects DefaultMaxElements, a negative value means no limit.
	MaxElements int
	// Changed, when set, is called after an element is stored, with the
	// element: the personal eventing service keeps XEP-0402 bookmarks in
	// step with XEP-0048's (XEP-0402 §5.3).
	Changed func(ctx context.Context, owner string, el *xmpp.Element)
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	if m.MaxBytes == 0 {
		m.MaxBytes = DefaultMaxBytes
	}
	if m.MaxElements == 0 {
		m.MaxElements = DefaultMaxElements
	}
	s.AddFeature(xmpp.ToServer, NS)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "query", m.get)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "query", m.set)
}

// Key is the storage.XMLDocs key of the element named space and local.
func Key(space, local string) string { return "{" + space + "}" + local }

// request checks that the sender asks about its own storage, and returns
// the one element of the query.
func request(iq *xmpp.IQ) (string, *xmpp.Element, error) {
	if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
		return "", nil, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "private storage is its own account's"}
	}
	els := iq.Payload.Elements()
	if len(els) != 1 {
		return "", nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a query holds exactly one element"}
	}
	el := els[0]
	switch el.Space {
	case "", xmpp.NSClient, xmpp.NSServer, NS:
		// §2.3: the namespace must be the element's own.
		return "", nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable,
			Text: "the element needs a namespace of its own, not " + el.Space}
	}
	return iq.To.Bare().String(), el, nil
}

// get returns the stored element, or the requested one, empty, when
// nothing is stored under its name (§3).
func (m *Module) get(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner, el, err := request(iq)
	if err != nil {
		return nil, err
	}
	q := xmpp.NewElement(NS, "query")
	data, err := m.Store.XMLDoc(ctx, owner, Key(el.Space, el.Local))
	if errors.Is(err, storage.ErrNotFound) {
		return q.Add(xmpp.NewElement(el.Space, el.Local)), nil
	}
	if err != nil {
		return nil, err
	}
	stored, err := xmpp.ParseElement(data)
	if err != nil {
		return nil, fmt.Errorf("private storage of %s: stored %s: %w", owner, Key(el.Space, el.Local), err)
	}
	return q.Add(stored), nil
}

// set replaces the element stored under the given one's name (§3).
func (m *Module) set(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner, el, err := request(iq)
	if err != nil {
		return nil, err
	}
	data := el.Bytes("")
	if m.MaxBytes > 0 && len(data) > m.MaxBytes {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable,
			Text: fmt.Sprintf("the element is %d bytes, more than the %d allowed", len(data), m.MaxBytes)}
	}
	lim := storage.XMLDocLimits{MaxBytes: m.MaxBytes, MaxDocs: m.MaxElements}
	if err := m.Store.PutXMLDoc(ctx, owner, Key(el.Space, el.Local), data, lim); err != nil {
		if errors.Is(err, storage.ErrLimit) {
			// Not the size: checked above.
			return nil, xmpp.StanzaError{Condition: xmpp.PolicyViolationCond,
				Text: fmt.Sprintf("private storage holds at most %d elements", m.MaxElements)}
		}
		return nil, err
	}
	if m.Changed != nil {
		m.Changed(ctx, owner, el)
	}
	return nil, nil
}

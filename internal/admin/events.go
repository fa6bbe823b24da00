package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of the app events (docs/events.md).
const (
	// NSEvent is the namespace of the <event/> that carries an app event.
	NSEvent = "urn:xmppd:event:0"
	// NSHints is Message Processing Hints (XEP-0334), with which a stored
	// event asks to be kept offline but not archived.
	NSHints = "urn:xmpp:hints"
)

// Limits of an event.
const (
	maxEventName    = 128
	maxEventPayload = 64 << 10
)

// events is the API's app events area: the app's own JSON, carried in an
// <event/> of NSEvent, to every online resource of the addressed accounts,
// teams and projects, whatever their transport (TCP, WebSocket, BOSH); and
// with store, kept offline for an account with none, until its next
// available presence (XEP-0160).
type events struct{ a *API }

func (p events) routes() []route {
	return []route{
		{method: "POST", path: "/events", change: true, h: p.send},
	}
}

// SendEvent is the body of POST /events.
type SendEvent struct {
	To Recipients `json:"to"`
	// Name is what the event is, for the page to dispatch on
	// ("task.updated").
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload"`
	Store   bool            `json:"store"`
}

// EventSent says where an event went: the sessions it was delivered to,
// and the accounts with none for which it was stored.
type EventSent struct {
	ID         string   `json:"id"`
	Recipients []string `json:"recipients"`
	Delivered  int      `json:"delivered"`
	Stored     []string `json:"stored"`
	// Unanswered names the nodes of a cluster that did not say whether
	// they delivered the event (it may be stored for their accounts too).
	Unanswered []string `json:"unanswered,omitempty"`
}

// askEvent asks another node to deliver an event to its sessions.
const askEvent = "event"

// eventQuery is an event for other nodes' sessions: the accounts and the
// message, serialised.
type eventQuery struct {
	JIDs    []string `json:"jids"`
	Message string   `json:"message"`
}

// deliverEach gives m to every local session of each account of bares;
// it returns the deliveries by account.
func deliverEach(ctx context.Context, srv *xmpp.Server, bares []string, m *xmpp.Element) map[string]int {
	out := make(map[string]int, len(bares))
	for _, bare := range bares {
		j, err := jid.Parse(bare)
		if err != nil {
			continue
		}
		if n := srv.Router().DeliverEach(ctx, j.Bare(), func(*xmpp.Session) *xmpp.Element { return m }); n > 0 {
			out[bare] = n
		}
	}
	return out
}

// eventHere delivers another node's event to this node's sessions.
func eventHere(ctx context.Context, srv *xmpp.Server, q eventQuery) (map[string]int, error) {
	m, err := xmpp.ParseStanza([]byte(q.Message))
	if err != nil {
		return nil, err
	}
	if m.Space != xmpp.NSClient || m.Local != "message" {
		return nil, fmt.Errorf("an event is a message, not %s", m.Local)
	}
	return deliverEach(ctx, srv, q.JIDs, m), nil
}

// validEventName allows what a page can dispatch on plainly.
func validEventName(s string) bool {
	if s == "" || len(s) > maxEventName {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

func (p events) send(w http.ResponseWriter, r *http.Request) error {
	var req SendEvent
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	if !validEventName(req.Name) {
		return invalid("name", "must be 1 to %d of the characters A-Z a-z 0-9 . _ - :", maxEventName)
	}
	payload := bytes.TrimSpace(req.Payload)
	if len(payload) == 0 || bytes.Equal(payload, []byte("null")) {
		return invalid("payload", "is required: any JSON value but null")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, payload); err != nil {
		return invalid("payload", "not valid JSON: %v", err)
	}
	if compact.Len() > maxEventPayload {
		return invalid("payload", "is larger than %d bytes", maxEventPayload)
	}
	if len(req.To.JIDs)+len(req.To.Groups) == 0 {
		return invalid("to", "names no recipient")
	}
	to, err := p.a.expand(ctx, "to", req.To, true)
	if err != nil {
		return err
	}
	for _, s := range req.To.JIDs {
		// Named accounts must exist (members of the groups do, as far as
		// the server is concerned: they may sign in with the app's tokens).
		if j, _ := p.a.parseAddress(s, true); !p.a.Server.AccountExists(ctx, j) {
			return notFound("no account %s", j)
		}
	}
	id := rand.Text()
	event := func() *xmpp.Element {
		return xmpp.NewElement(NSEvent, "event", "name", req.Name, "id", id).Add(xmpp.Text(compact.String()))
	}
	res := EventSent{ID: id, Recipients: to, Stored: []string{}}
	if res.Recipients == nil {
		res.Recipients = []string{}
	}
	// Every session, available or not yet, on every node: a page that
	// signed in gets the app's events whatever its presence. A headline is
	// what RFC 6121 §8.5.2.1.1 gives to each resource.
	m := xmpp.NewElement(xmpp.NSClient, "message", "from", p.a.Server.Domain, "type", "headline", "id", id)
	m.Add(event())
	delivered := deliverEach(ctx, p.a.Server, to, m)
	answers, unanswered := p.a.cluster().ask(ctx, askEvent, eventQuery{JIDs: to, Message: string(m.Bytes(xmpp.NSClient))})
	for node, body := range answers {
		var theirs map[string]int
		if err := json.Unmarshal(body, &theirs); err != nil {
			p.a.Log.Warn("admin API: another node's event deliveries", "node", node, "err", err)
			unanswered = append(unanswered, node)
			continue
		}
		for bare, n := range theirs {
			delivered[bare] += n
		}
	}
	slices.Sort(unanswered)
	res.Unanswered = unanswered
	router := p.a.Server.Router()
	for _, bare := range to {
		n := delivered[bare]
		res.Delivered += n
		if n > 0 || !req.Store {
			continue
		}
		// Nobody online: a normal message to the bare JID, which the
		// offline module keeps (<store/>) and the archive leaves
		// (<no-permanent-store/>); should a session have come meanwhile,
		// the router gives it the message straight away.
		s := xmpp.NewElement(xmpp.NSClient, "message", "from", p.a.Server.Domain, "to", bare, "type", "normal", "id", id)
		s.Add(event(), xmpp.NewElement(NSHints, "store"), xmpp.NewElement(NSHints, "no-permanent-store"))
		router.Route(ctx, s, nil)
		res.Stored = append(res.Stored, bare)
	}
	return writeJSON(w, http.StatusOK, res)
}

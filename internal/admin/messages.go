package admin

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
)

// messages is the API's messages area: a chat, normal or headline message
// from the server or from an account, to addresses, to every member of
// teams and projects, and into rooms. It goes through the router as any
// message does (RFC 6121 §8.5): to an account's resources, to offline
// storage when none is online (chat and normal), and through federation
// to other servers.
//
// Into a room, a message comes from the room itself (its bare JID, as the
// service's own notices do, XEP-0045 §10.2.1), not from a user: a user's
// groupchat message needs the user in the room as an occupant, with a
// nick, which an app acting for an account that is offline cannot be.
type messages struct{ a *API }

func (p messages) routes() []route {
	return []route{
		{method: "POST", path: "/messages", change: true, h: p.send},
	}
}

// maxText bounds a message's body and subject (in characters), well
// within the stanza size limit.
const maxText = 64 << 10

// MessageTo addresses a message: Recipients and rooms (a name on the chat
// service, or a room's JID).
type MessageTo struct {
	Recipients
	Rooms []string `json:"rooms,omitempty"`
}

// SendMessage is the body of POST /messages.
type SendMessage struct {
	// From is "" for the server itself, or an account of this server.
	From    string    `json:"from"`
	To      MessageTo `json:"to"`
	Type    string    `json:"type"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
}

// Sent says what a message or event went to.
type Sent struct {
	ID string `json:"id"`
	// Recipients are the accounts and addresses it was routed to, rooms
	// the rooms.
	Recipients []string `json:"recipients"`
	Rooms      []string `json:"rooms,omitempty"`
}

func (p messages) send(w http.ResponseWriter, r *http.Request) error {
	var req SendMessage
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	switch req.Type {
	case "":
		req.Type = "chat"
	case "chat", "normal", "headline":
	default:
		return invalid("type", "must be chat, normal or headline")
	}
	if req.Body == "" && req.Subject == "" {
		return invalid("body", "a message needs a body or a subject")
	}
	for _, f := range []struct{ name, v string }{{"body", req.Body}, {"subject", req.Subject}} {
		if !utf8.ValidString(f.v) || utf8.RuneCountInString(f.v) > maxText {
			return invalid(f.name, "must be UTF-8 of at most %d characters", maxText)
		}
	}
	if len(req.To.JIDs)+len(req.To.Groups)+len(req.To.Rooms) == 0 {
		return invalid("to", "names no recipient")
	}
	from := p.a.Server.Domain
	if req.From != "" {
		if len(req.To.Rooms) > 0 {
			return invalid("from", "messages into rooms come from the room itself: leave from empty")
		}
		j, err := p.a.parseAddress(req.From, true)
		if err != nil {
			return invalid("from", "%v", err)
		}
		// An account has credentials, or signs in with the app's tokens
		// as a member of a team or project.
		if !p.a.Server.AccountExists(ctx, j) {
			return notFound("no account %s", j)
		}
		from = j
	}
	to, err := p.a.expand(ctx, "to", req.To.Recipients, false)
	if err != nil {
		return err
	}
	var roomJIDs []string
	var svc *muc.Service
	if len(req.To.Rooms) > 0 {
		if svc, err = p.a.service(); err != nil {
			return err
		}
		for i, s := range req.To.Rooms {
			rj, err := roomJID(svc, fmt.Sprintf("to.rooms[%d]", i), s)
			if err != nil {
				return err
			}
			// Every room must exist before anything is sent.
			if _, err := svc.Room(ctx, rj); err != nil {
				return roomError(err, rj)
			}
			roomJIDs = append(roomJIDs, rj)
		}
	}
	id := rand.Text()
	for _, j := range to {
		m := xmpp.NewElement(xmpp.NSClient, "message", "from", from, "to", j, "type", req.Type, "id", id)
		if req.Subject != "" {
			m.Add(xmpp.NewElement(xmpp.NSClient, "subject").Add(xmpp.Text(req.Subject)))
		}
		if req.Body != "" {
			m.Add(xmpp.NewElement(xmpp.NSClient, "body").Add(xmpp.Text(req.Body)))
		}
		p.a.Server.Router().Route(ctx, m, nil)
	}
	for _, rj := range roomJIDs {
		// Checked above; a room destroyed since is the only failure.
		if err := svc.Announce(ctx, rj, req.Subject, req.Body); err != nil {
			return roomError(err, rj)
		}
	}
	if to == nil {
		to = []string{}
	}
	return writeJSON(w, http.StatusOK, Sent{ID: id, Recipients: to, Rooms: roomJIDs})
}

package admin

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// sessions is the API's sessions area: the client sessions bound on this
// node.
type sessions struct{ a *API }

func (p sessions) routes() []route {
	return []route{
		{"GET", "/sessions", false, p.list},
		{"DELETE", "/sessions/{jid}", true, p.kick},
	}
}

// A SessionInfo is one online session in GET /sessions.
type SessionInfo struct {
	JID       string    `json:"jid"`
	Transport string    `json:"transport"`
	Node      string    `json:"node"`
	Since     time.Time `json:"since"`
	Address   string    `json:"address"`
	// Hibernated is a stream-management session waiting to be resumed
	// (XEP-0198 §5) with no connection.
	Hibernated bool `json:"hibernated"`
}

// list pages through the node's sessions by full JID.
func (p sessions) list(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	all := p.a.Server.LocalSessions()
	slices.SortFunc(all, func(x, y *xmpp.Session) int { return strings.Compare(x.JID().String(), y.JID().String()) })
	keys := make([]string, len(all))
	for i, s := range all {
		keys[i] = s.JID().String()
	}
	// Two sessions never share a full JID (a new binding replaces the
	// old), but one may end and another bind between the calls above:
	// keys are compacted so that pageOf's search stays right.
	keys = slices.Compact(keys)
	page, next := pageOf(keys, cursor, limit)
	out := Page[SessionInfo]{Items: make([]SessionInfo, 0, len(page)), NextCursor: next}
	byJID := make(map[string]*xmpp.Session, len(all))
	for _, s := range all {
		byJID[s.JID().String()] = s
	}
	node := p.a.Server.Node()
	for _, k := range page {
		s := byJID[k]
		out.Items = append(out.Items, SessionInfo{
			JID:        k,
			Transport:  s.Transport(),
			Node:       node,
			Since:      s.Since().UTC(),
			Address:    s.RemoteAddr(),
			Hibernated: s.Hibernated(),
		})
	}
	return writeJSON(w, http.StatusOK, out)
}

// kick closes one session with a stream error (RFC 6120 §4.9.3.14
// <policy-violation/>): the client learns why, and a hibernated session
// cannot be resumed.
func (p sessions) kick(w http.ResponseWriter, r *http.Request) error {
	s := r.PathValue("jid")
	full, err := jid.Parse(s)
	if err != nil {
		return invalid("jid", "not a valid JID: %v", err)
	}
	if full.Resourcepart() == "" {
		return invalid("jid", "a full JID (user@domain/resource) is required")
	}
	sess := p.a.Server.SessionOf(full)
	if sess == nil {
		return notFound("no session %s on this node", full)
	}
	sess.Close(&xmpp.StreamError{Condition: xmpp.PolicyViolation, Text: "disconnected by an administrator"})
	p.a.Log.Info("session disconnected", "jid", full.String(), "token", TokenName(r.Context()))
	return writeJSON(w, http.StatusOK, struct {
		JID string `json:"jid"`
	}{full.String()})
}

package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// sessions is the API's sessions area: the client sessions bound on every
// node of a cluster.
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

// A SessionPage is a page of GET /sessions: the sessions of every node of
// a cluster. Unanswered names the nodes that did not answer in time, whose
// sessions are missing from it.
type SessionPage struct {
	Page[SessionInfo]
	Unanswered []string `json:"unanswered,omitempty"`
}

// Questions to the other nodes about their sessions (cluster.go).
const (
	askSessions = "sessions"
	askKick     = "kick"
	askEnd      = "end"
)

type sessionsQuery struct {
	Cursor string `json:"cursor"`
	Limit  int    `json:"limit"`
}

type kickQuery struct {
	JID string `json:"jid"`
}

type endQuery struct {
	JID  string `json:"jid"`
	Text string `json:"text"`
}

// ended is how many sessions a node ended.
type ended struct {
	N int `json:"n"`
}

// list pages through the sessions of every node by full JID: each node
// gives its first limit+1 after the cursor, and the page is the first
// limit of them all. A full JID bound on two nodes at once (docs/cluster.md)
// is not split between two pages, which would lose one of them, since the
// cursor is a JID.
func (p sessions) list(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	all := sessionsHere(p.a.Server, cursor, limit+1)
	answers, unanswered := p.a.cluster().ask(r.Context(), askSessions, sessionsQuery{Cursor: cursor, Limit: limit + 1})
	for node, body := range answers {
		var theirs []SessionInfo
		if err := json.Unmarshal(body, &theirs); err != nil {
			p.a.Log.Warn("admin API: another node's sessions", "node", node, "err", err)
			unanswered = append(unanswered, node)
			continue
		}
		all = append(all, theirs...)
	}
	slices.Sort(unanswered)
	out := SessionPage{Page: pageSessions(all, limit), Unanswered: unanswered}
	return writeJSON(w, http.StatusOK, out)
}

// pageSessions sorts the nodes' sessions by full JID (then node) and
// keeps the first limit, and those that share the last one's JID: the
// cursor of the next page is a JID, and a JID split between two pages
// would lose its sessions on the second.
func pageSessions(all []SessionInfo, limit int) Page[SessionInfo] {
	slices.SortFunc(all, func(x, y SessionInfo) int {
		return cmp.Or(strings.Compare(x.JID, y.JID), strings.Compare(x.Node, y.Node))
	})
	if len(all) <= limit {
		return Page[SessionInfo]{Items: all}
	}
	end := limit
	for end < len(all) && all[end].JID == all[end-1].JID {
		end++
	}
	p := Page[SessionInfo]{Items: all[:end]}
	if end < len(all) {
		p.NextCursor = all[end-1].JID
	}
	return p
}

// sessionsHere lists this node's sessions whose full JIDs sort after
// cursor, sorted, at most limit.
func sessionsHere(srv *xmpp.Server, cursor string, limit int) []SessionInfo {
	var after []*xmpp.Session
	for _, s := range srv.LocalSessions() {
		if s.JID().String() > cursor {
			after = append(after, s)
		}
	}
	slices.SortFunc(after, func(x, y *xmpp.Session) int { return strings.Compare(x.JID().String(), y.JID().String()) })
	// Two sessions never share a full JID here (a new binding replaces the
	// old), but one may end and another bind while the list is read.
	after = slices.CompactFunc(after, func(x, y *xmpp.Session) bool { return x.JID().Equal(y.JID()) })
	out := make([]SessionInfo, 0, min(limit, len(after)))
	for _, s := range after[:min(limit, len(after))] {
		out = append(out, SessionInfo{
			JID:        s.JID().String(),
			Transport:  s.Transport(),
			Node:       srv.Node(),
			Since:      s.Since().UTC(),
			Address:    s.RemoteAddr(),
			Hibernated: s.Hibernated(),
		})
	}
	return out
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
	// Asked of every node: the registry may not know of a session that
	// has just bound, and a resource may be bound on two nodes at once.
	n := kickHere(p.a.Server, full.String())
	answers, unanswered := p.a.cluster().ask(r.Context(), askKick, kickQuery{JID: full.String()})
	n += sumEnded(p.a.Log, answers)
	if n == 0 {
		if len(unanswered) > 0 {
			return notFound("no session %s on the nodes that answered (not: %s)", full, strings.Join(unanswered, ", "))
		}
		return notFound("no session %s on any node", full)
	}
	p.a.Log.Info("session disconnected", "jid", full.String(), "token", TokenName(r.Context()))
	return writeJSON(w, http.StatusOK, struct {
		JID string `json:"jid"`
	}{full.String()})
}

// kickHere closes the local session bound to full (a full JID) with
// <policy-violation/> (RFC 6120 §4.9.3.14): the client learns why, and a
// hibernated session cannot be resumed. It returns how many it closed.
func kickHere(srv *xmpp.Server, full string) int {
	j, err := jid.Parse(full)
	if err != nil {
		return 0
	}
	sess := srv.SessionOf(j)
	if sess == nil {
		return 0
	}
	sess.Close(&xmpp.StreamError{Condition: xmpp.PolicyViolation, Text: "disconnected by an administrator"})
	return 1
}

// endHere closes the local sessions of the account bare with
// <not-authorized/> saying text; it returns how many.
func endHere(srv *xmpp.Server, bare, text string) int {
	j, err := jid.Parse(bare)
	if err != nil {
		return 0
	}
	return srv.EndSessions(j.Bare(), xmpp.StreamError{Condition: xmpp.NotAuthorized, Text: text}, nil)
}

// endSessions ends the account's sessions on every node, as what signed in
// with its old credentials no longer may; it returns how many it ended
// (on the nodes that answered).
func (a *API) endSessions(ctx context.Context, bare jid.JID, text string) int {
	n := endHere(a.Server, bare.String(), text)
	answers, unanswered := a.cluster().ask(ctx, askEnd, endQuery{JID: bare.String(), Text: text})
	if len(unanswered) > 0 {
		a.Log.Warn("admin API: nodes did not say whether they ended the account's sessions", "jid", bare.String(), "nodes", unanswered)
	}
	return n + sumEnded(a.Log, answers)
}

// sumEnded adds up the nodes' counts of sessions ended.
func sumEnded(log *slog.Logger, answers map[string][]byte) int {
	n := 0
	for node, body := range answers {
		var e ended
		if err := json.Unmarshal(body, &e); err != nil {
			log.Warn("admin API: another node's answer", "node", node, "err", err)
			continue
		}
		n += e.N
	}
	return n
}

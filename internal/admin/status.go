package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// status is the API's status area: what this server is and how busy, this
// node and the cluster.
type status struct{ a *API }

func (p status) routes() []route {
	return []route{
		{"GET", "/status", false, p.get},
	}
}

// Status is what GET /status answers.
type Status struct {
	Version string  `json:"version"`
	UptimeS float64 `json:"uptime_s"`
	Domain  string  `json:"domain"`
	Node    string  `json:"node"`
	// Nodes are the nodes sharing the presence registry that are alive,
	// sorted; just Node when the registry cannot tell.
	Nodes []string `json:"nodes"`
	// Sessions counts the client sessions bound on this node, Hibernated
	// those of them waiting to be resumed.
	Sessions   int   `json:"sessions"`
	Hibernated int64 `json:"hibernated"`
	Accounts   int   `json:"accounts"`
	// ClusterSessions and ClusterHibernated count the sessions of every
	// node that answered, this one included; PerNode has each one's
	// counts, sorted by node; Unanswered names the nodes that did not
	// answer in time. On a single node they are this node's.
	ClusterSessions   int         `json:"cluster_sessions"`
	ClusterHibernated int64       `json:"cluster_hibernated"`
	PerNode           []NodeCount `json:"per_node"`
	Unanswered        []string    `json:"unanswered,omitempty"`
}

// NodeCount is one node's sessions in Status.
type NodeCount struct {
	Node       string `json:"node"`
	Sessions   int    `json:"sessions"`
	Hibernated int64  `json:"hibernated"`
}

// askCount asks another node for its NodeCount.
const askCount = "count"

// countHere counts this node's sessions.
func countHere(srv *xmpp.Server) NodeCount {
	return NodeCount{Node: srv.Node(), Sessions: len(srv.LocalSessions()), Hibernated: srv.Hibernating()}
}

// nodeLister is a registry that knows the nodes alive (storage/redis).
type nodeLister interface {
	Nodes(ctx context.Context) ([]string, error)
}

func (p status) get(w http.ResponseWriter, r *http.Request) error {
	srv := p.a.Server
	users, err := p.a.Store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	nodes := []string{srv.Node()}
	if nl, ok := srv.Registry().(nodeLister); ok {
		if ns, err := nl.Nodes(r.Context()); err == nil && len(ns) > 0 {
			nodes = ns
		} else if err != nil {
			p.a.Log.Warn("admin API: listing the nodes", "err", err)
		}
	}
	here := countHere(srv)
	st := Status{
		Version:    srv.Version,
		UptimeS:    time.Since(srv.Started()).Round(time.Millisecond).Seconds(),
		Domain:     srv.Domain,
		Node:       srv.Node(),
		Nodes:      nodes,
		Sessions:   here.Sessions,
		Hibernated: here.Hibernated,
		Accounts:   len(users),
		PerNode:    []NodeCount{here},
	}
	answers, unanswered := p.a.cluster().ask(r.Context(), askCount, struct{}{})
	for node, body := range answers {
		var c NodeCount
		if err := json.Unmarshal(body, &c); err != nil {
			p.a.Log.Warn("admin API: another node's count", "node", node, "err", err)
			unanswered = append(unanswered, node)
			continue
		}
		st.PerNode = append(st.PerNode, c)
	}
	slices.Sort(unanswered)
	st.Unanswered = unanswered
	slices.SortFunc(st.PerNode, func(x, y NodeCount) int { return strings.Compare(x.Node, y.Node) })
	for _, c := range st.PerNode {
		st.ClusterSessions += c.Sessions
		st.ClusterHibernated += c.Hibernated
	}
	return writeJSON(w, http.StatusOK, st)
}

package admin

import (
	"context"
	"net/http"
	"time"
)

// status is the API's status area: what this server is and how busy.
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
	return writeJSON(w, http.StatusOK, Status{
		Version:    srv.Version,
		UptimeS:    time.Since(srv.Started()).Round(time.Millisecond).Seconds(),
		Domain:     srv.Domain,
		Node:       srv.Node(),
		Nodes:      nodes,
		Sessions:   len(srv.LocalSessions()),
		Hibernated: srv.Hibernating(),
		Accounts:   len(users),
	})
}

package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/xmpp"
)

// newAdmin builds the admin listener's server (listen.admin) and mounts the
// admin API (docs/api.md) where api.enabled and api.web_listener say. The
// returned mux is the admin listener's: operations' endpoints (/metrics,
// /healthz) are added to it with Handle, before it serves.
//
// On the web listener the API answers only secure requests (HTTPS, a
// secure network, or a trusted proxy saying HTTPS: policy.Client), as
// sign-in over the web transports does: a bearer token must not cross the
// network in clear.
func newAdmin(cfg config.Config, srv *xmpp.Server, log *slog.Logger, policy *xmpp.WebPolicy) (*http.Server, *http.ServeMux) {
	mux := http.NewServeMux()
	if cfg.API.Enabled {
		api := &admin.API{
			Server: srv,
			Store:  srv.Store,
			Tokens: admin.StoredTokens{Store: srv.Store},
			Log:    log.With("module", "admin"),
		}
		h := api.Handler()
		mux.Handle(admin.Prefix+"/", h)
		if cfg.API.WebListener {
			srv.HandleHTTP(admin.Prefix+"/", secureOnly(h, policy))
		}
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, mux
}

// secureOnly refuses, with 403 and the API's JSON error, a request that
// policy does not count as secure.
func secureOnly(h http.Handler, policy *xmpp.WebPolicy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, secure := policy.Client(r); !secure {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(admin.Error{Status: http.StatusForbidden,
				Message: "the admin API needs HTTPS here (or listen.admin, or http.secure_networks)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

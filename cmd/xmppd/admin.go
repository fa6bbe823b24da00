package main

import (
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
func newAdmin(cfg config.Config, srv *xmpp.Server, log *slog.Logger) (*http.Server, *http.ServeMux) {
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
			srv.HandleHTTP(admin.Prefix+"/", h)
		}
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, mux
}

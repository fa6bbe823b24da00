package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/internal/metrics"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// newMetrics is the collectors the configuration asks for, or nil
// (metrics.enabled: false), in which case the store is not wrapped and the
// core counts nothing.
func newMetrics(cfg config.Config) *metrics.Metrics {
	if !cfg.Metrics.Enabled {
		return nil
	}
	return metrics.New()
}

// metricsOf is the server's collectors, or nil.
func metricsOf(srv *xmpp.Server) *metrics.Metrics {
	m, _ := srv.Metrics.(*metrics.Metrics)
	return m
}

// addOperations adds the operators' endpoints to the admin listener's mux:
// /metrics (when on), /healthz and /readyz. Readiness asks the store
// (unwrapped, so that probes do not show in the storage metrics) and, when
// presence is in Redis, the registry.
func addOperations(cfg config.Config, srv *xmpp.Server, registry storage.Registry, log *slog.Logger, mux *http.ServeMux) {
	st := srv.Store
	if w, ok := st.(*metrics.Store); ok {
		st = w.Unwrap()
	}
	checks := []metrics.Check{metrics.ServerCheck(srv), metrics.StoreCheck(st)}
	if p, ok := registry.(interface {
		Ping(context.Context) error
	}); ok {
		checks = append(checks, metrics.PingCheck("redis", p))
	}
	m := metricsOf(srv)
	if m != nil {
		m.Watch(srv)
	}
	metrics.Register(mux, m, &metrics.Probes{Checks: checks})
	if host, _, err := net.SplitHostPort(cfg.Listen.Admin); err == nil {
		if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			log.Warn("listen.admin is not a loopback address: keep it off the internet (a firewall, a private network), since /metrics tells about the server's users in aggregate", "addr", cfg.Listen.Admin)
		}
	}
}

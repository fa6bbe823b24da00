package main

import (
	"context"
	"log/slog"

	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/xmpp"
)

// startBus joins the cluster bus when presence is in Redis: the nodes that
// share the registry reach each other's sessions through it (docs: the
// cluster section of configuration.md). It returns the function that
// leaves it, or nil with a single-node registry.
func startBus(ctx context.Context, cfg config.Config, srv *xmpp.Server, registry storage.Registry, log *slog.Logger) (func(), error) {
	reg, ok := registry.(*redis.Registry)
	if !ok {
		return nil, nil
	}
	bus, err := redis.OpenBus(ctx, redis.BusOptions{
		Addr:   cfg.Presence.Redis,
		Prefix: cfg.Presence.Prefix,
		Node:   reg.Node(), // where the registry says this node's sessions are
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	srv.Bus = bus
	err = bus.Serve(ctx, func(payload []byte) {
		if err := srv.Receive(srv.Context(), payload); err != nil {
			log.Warn("cluster bus: a stanza from another node does not parse", "err", err)
		}
	})
	if err != nil {
		bus.Close()
		return nil, err
	}
	return func() { bus.Close() }, nil
}

package main

import (
	"context"
	"log/slog"

	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/xmpp"
)

// mucHosting is what shares chat rooms between the nodes of a cluster:
// the registry in Redis, which the nodes share; nil on a single node.
func mucHosting(registry storage.Registry) muc.Hosting {
	if reg, ok := registry.(*redis.Registry); ok {
		return reg
	}
	return nil
}

// startBus joins the cluster bus when presence is in Redis: the nodes that
// share the registry reach each other's sessions through it, and learn
// when a node dies (its sessions are then unavailable to this node's).
// It returns the function that leaves, or nil with a single-node
// registry.
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
		// ctx, not srv.Context(): the server may not have started yet
		// (Receive starts it), and its context is made then.
		if err := srv.Receive(ctx, payload); err != nil {
			log.Warn("cluster bus: a stanza from another node does not parse", "err", err)
		}
	})
	if err != nil {
		bus.Close()
		return nil, err
	}
	// A node whose entries expired (its heartbeat stalled) was taken for
	// dead by the others: its sessions announce themselves again.
	reg.OnLost(func() {
		srv.Go(func(ctx context.Context) { srv.TakenForGone(ctx) })
	})
	// A node that dies leaves its sessions' entries to expire; each node
	// then tells its own sessions that those contacts went away.
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.WatchNodes(wctx, func(ev redis.NodeEvent) {
			if !ev.Alive && len(ev.Sessions) > 0 {
				log.Warn("cluster: a node went away without ending its sessions", "node", ev.Node, "accounts", len(ev.Sessions))
				srv.SessionsGone(wctx, ev.Sessions)
			}
		})
	}()
	return func() {
		stop()
		<-done
		bus.Close()
	}, nil
}

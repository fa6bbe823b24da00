package redis

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The node list (key "nodes") is a set of "<node>:<incarnation>", one per
// Open, so that finding the nodes costs a read of that set rather than a
// SCAN of the whole keyspace (every pres: hash) per poll. A member is only
// a hint: the node key says whether the incarnation lives. Members are
// pruned once their node key and their index are both gone.

// A NodeEvent reports that a node incarnation appeared or vanished.
type NodeEvent struct {
	Node string
	// Incarnation tells a node restarted under the same name from its
	// previous life, whose sessions are gone although the name is alive.
	Incarnation string
	Alive       bool
	// Sessions is, for a node that vanished without Close (it crashed, or
	// lost Redis for a TTL), what its sessions were: bare JID → resources,
	// sorted, leaving out a resource another node has bound since. Nil
	// for a live node, and for one that closed: it ended its sessions
	// itself.
	Sessions map[string][]string
}

func (r *Registry) nodesKey() string { return r.prefix + "nodes" }

func (r *Registry) idxKeyOf(node, incarnation string) string {
	return r.prefix + "nodeidx:" + node + ":" + incarnation
}

// splitNodeMember splits a member of the node list; the incarnation is hex
// and the node name may hold ':'.
func splitNodeMember(m string) (node, incarnation string) {
	i := strings.LastIndexByte(m, ':')
	if i < 0 {
		return m, ""
	}
	return m[:i], m[i+1:]
}

// Nodes returns the names of the live nodes, this one included, sorted, in
// two round trips.
func (r *Registry) Nodes(ctx context.Context) ([]string, error) {
	if r.closed.Load() {
		return nil, fmt.Errorf("nodes: %w", errClosed)
	}
	live, err := r.liveNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis: nodes: %w", err)
	}
	names := make([]string, 0, len(live))
	for _, m := range live {
		node, _ := splitNodeMember(m)
		names = append(names, node)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// liveNodes returns the members of the node list whose node key exists,
// sorted, and prunes those whose index has gone too.
func (r *Registry) liveNodes(ctx context.Context) ([]string, error) {
	members, err := r.client.SMembers(ctx, r.nodesKey()).Result()
	if err != nil {
		return nil, err
	}
	slices.Sort(members)
	cmds := make([]*goredis.IntCmd, len(members))
	_, err = r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, m := range members {
			node, inc := splitNodeMember(m)
			// 2: the node lives; 1: it died and its index is still
			// there; 0: gone.
			cmds[i] = p.Exists(ctx, r.nodeKeyOf(node, inc), r.nodeKeyOf(node, inc), r.idxKeyOf(node, inc))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	live := members[:0]
	var gone []any
	for i, m := range members {
		switch n, _ := cmds[i].Result(); {
		case n >= 2:
			live = append(live, m)
		case n == 0:
			gone = append(gone, m)
		}
	}
	if len(gone) > 0 {
		// Best effort: a member left behind is pruned by the next poll. A
		// node that comes back (resync) adds itself again.
		_ = r.client.SRem(ctx, r.nodesKey(), gone...).Err()
	}
	return live, nil
}

// WatchNodes polls the node list every TTL/3 and calls fn for each other
// node incarnation that appears (first, all that are alive) or vanishes,
// until ctx ends (it returns nil) or r is closed. A node that crashed is
// reported within TTL plus TTL/3 of its last heartbeat, with its sessions,
// so that this node can tell its local sessions that they went away. fn
// runs on the caller's goroutine, one event at a time. Polls that fail
// (Redis away) are logged and retried.
//
// A node whose heartbeat stalls for a TTL is reported as vanished, and as
// appearing again once it beats (with the same incarnation).
func (r *Registry) WatchNodes(ctx context.Context, fn func(NodeEvent)) error {
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	known := make(map[string]bool)
	failing := false
	for {
		err := r.pollNodes(ctx, r.member, known, fn)
		switch {
		case ctx.Err() != nil:
			return nil
		case r.closed.Load():
			return fmt.Errorf("watch nodes: %w", errClosed)
		case err != nil && !failing:
			failing = true
			r.log.Warn("presence registry: watching the nodes failed; crashed nodes go unnoticed while it lasts", "err", err)
		case err == nil && failing:
			failing = false
			r.log.Info("presence registry: watching the nodes again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.done: // Close
			return fmt.Errorf("watch nodes: %w", errClosed)
		case <-tick.C:
		}
	}
}

// pollNodes compares the live nodes with known, reports the differences to
// fn and updates known.
func (r *Registry) pollNodes(ctx context.Context, self string, known map[string]bool, fn func(NodeEvent)) error {
	ctx, cancel := context.WithTimeout(ctx, r.ttl/3)
	defer cancel()
	live, err := r.liveNodes(ctx)
	if err != nil {
		return err
	}
	for _, m := range live {
		if m != self && !known[m] {
			known[m] = true
			node, inc := splitNodeMember(m)
			fn(NodeEvent{Node: node, Incarnation: inc, Alive: true})
		}
	}
	var dead []string
	for m := range known {
		if _, found := slices.BinarySearch(live, m); !found {
			dead = append(dead, m)
		}
	}
	slices.Sort(dead)
	for _, m := range dead {
		node, inc := splitNodeMember(m)
		sessions, err := r.deadSessions(ctx, node, inc)
		if err != nil {
			// Reported at the next poll.
			return err
		}
		delete(known, m)
		fn(NodeEvent{Node: node, Incarnation: inc, Sessions: sessions})
	}
	return nil
}

// deadSessions reads a dead node's index and leaves out each session whose
// entry now belongs to another node, in two round trips.
func (r *Registry) deadSessions(ctx context.Context, node, inc string) (map[string][]string, error) {
	members, err := r.client.SMembers(ctx, r.idxKeyOf(node, inc)).Result()
	if err != nil || len(members) == 0 {
		return nil, err
	}
	byBare := make(map[string][]string)
	for _, m := range members {
		bare, res := splitIdxMember(m)
		byBare[bare] = append(byBare[bare], res)
	}
	bares := make([]string, 0, len(byBare))
	for bare := range byBare {
		bares = append(bares, bare)
	}
	cmds := make([]*goredis.SliceCmd, len(bares))
	_, err = r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, bare := range bares {
			cmds[i] = p.HMGet(ctx, r.presKey(bare), byBare[bare]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	owner := ownerPrefix(node, inc)
	sessions := make(map[string][]string, len(bares))
	for i, bare := range bares {
		var kept []string
		for j, v := range cmds[i].Val() {
			// Missing: a reader deleted the dead entry already.
			if s, ok := v.(string); !ok || bytes.HasPrefix([]byte(s), owner) {
				kept = append(kept, byBare[bare][j])
			}
		}
		if len(kept) > 0 {
			slices.Sort(kept)
			sessions[bare] = kept
		}
	}
	return sessions, nil
}

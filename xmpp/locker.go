package xmpp

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/memory"
)

// A Locker serialises work on one key, such as an account's roster or
// offline queue: in this process by default, across every node sharing a
// Redis when configured (storage/redis.Locker).
type Locker interface {
	// Lock waits until key is free, or ctx ends, and returns the function
	// that frees it.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// localLocker is the in-process Locker: mutexes in shards, so that two
// accounts rarely wait for each other and memory does not grow with the
// number of accounts.
type localLocker struct {
	seed   maphash.Seed
	shards [256]sync.Mutex
}

func newLocalLocker() *localLocker { return &localLocker{seed: maphash.MakeSeed()} }

func (l *localLocker) Lock(ctx context.Context, key string) (func(), error) {
	mu := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	mu.Lock()
	return mu.Unlock, nil
}

// Lock takes the server's lock on key (Server.Locker).
func (s *Server) Lock(ctx context.Context, key string) (func(), error) {
	return s.locker.Lock(ctx, key)
}

// Registry returns the presence and session registry (Server.Registry, or
// the in-memory one).
func (s *Server) Registry() storage.Registry { return s.registry }

// Node names this process in the registry.
func (s *Server) Node() string { return s.node }

// initShared sets up the registry and the locker: the configured ones, or
// this process's own.
func (s *Server) initShared() {
	s.registry = s.SessionRegistry
	if s.registry == nil {
		s.registry = memory.NewRegistry(s.NodeName)
	}
	s.node = s.NodeName
	if n, ok := s.registry.(interface{ Node() string }); ok && s.node == "" {
		s.node = n.Node()
	}
	s.locker = s.Locker
	if s.locker == nil {
		s.locker = newLocalLocker()
	}
}

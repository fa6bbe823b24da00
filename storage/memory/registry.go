package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/xmppd/xmppd/storage"
)

// errClosed is returned by a Registry after Close.
var errClosed = errors.New("memory: registry closed")

// Registry is a storage.Registry held in memory. Its methods are safe for
// concurrent use.
type Registry struct {
	node string
	t    *table
	// closed is guarded by t.mu.
	closed bool
}

// table holds the entries of every Registry that shares it.
type table struct {
	mu sync.Mutex
	// bare JID → its entries, sorted by resource. A slice, not a map: an
	// account has a few sessions, and every online account has an entry.
	m map[string][]entry
}

func byResource(e entry, resource string) int { return strings.Compare(e.res.Resource, resource) }

type entry struct {
	res storage.Resource
	// owner is the Registry that wrote the entry; a peer opened with the
	// same node name is still another owner, as a restarted node is.
	owner *Registry
}

// NewRegistry returns an empty registry for node. An empty node is named
// after the host and the process ID.
func NewRegistry(node string) *Registry {
	return &Registry{node: defaultNode(node), t: &table{m: make(map[string][]entry)}}
}

// Peer returns a registry for another node that shares r's entries, as
// nodes sharing one Redis do. Closing either leaves the other open.
func (r *Registry) Peer(node string) *Registry {
	return &Registry{node: defaultNode(node), t: r.t}
}

// Node returns the name this registry writes into its entries.
func (r *Registry) Node() string { return r.node }

// SetResource implements storage.Registry. The entry's Node is r's node,
// whatever res.Node says.
func (r *Registry) SetResource(ctx context.Context, bare string, res storage.Resource) error {
	res.Node = r.node
	res.Presence = bytes.Clone(res.Presence)
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return fmt.Errorf("set %s/%s: %w", bare, res.Resource, errClosed)
	}
	list := r.t.m[bare]
	i, found := slices.BinarySearchFunc(list, res.Resource, byResource)
	if found {
		list[i] = entry{res: res, owner: r}
	} else {
		r.t.m[bare] = slices.Insert(list, i, entry{res: res, owner: r})
	}
	return nil
}

// RemoveResource implements storage.Registry. It removes only an entry that
// r wrote: when the resource has since been bound on another node, that
// node's entry stays.
func (r *Registry) RemoveResource(ctx context.Context, bare, resource string) error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return fmt.Errorf("remove %s/%s: %w", bare, resource, errClosed)
	}
	list := r.t.m[bare]
	if i, found := slices.BinarySearchFunc(list, resource, byResource); found && list[i].owner == r {
		r.t.m[bare] = slices.Delete(list, i, i+1)
		if len(list) == 1 {
			delete(r.t.m, bare)
		}
	}
	return nil
}

// Resources implements storage.Registry.
func (r *Registry) Resources(ctx context.Context, bare string) ([]storage.Resource, error) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("resources of %s: %w", bare, errClosed)
	}
	entries := r.t.m[bare]
	list := make([]storage.Resource, 0, len(entries))
	for _, e := range entries {
		// Presence is shared, not copied: SetResource stored a copy of
		// its own and replaces it whole, and callers only read it. In a
		// team signing in this is called n² times.
		list = append(list, e.res)
	}
	return list, nil
}

// Close removes r's entries; peers keep theirs. Closing again does nothing.
func (r *Registry) Close() error {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	for bare, list := range r.t.m {
		list = slices.DeleteFunc(list, func(e entry) bool { return e.owner == r })
		if len(list) == 0 {
			delete(r.t.m, bare)
		} else {
			r.t.m[bare] = list
		}
	}
	return nil
}

// defaultNode returns node, or "host-pid" when it is empty.
func defaultNode(node string) string {
	if node != "" {
		return node
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "xmppd"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

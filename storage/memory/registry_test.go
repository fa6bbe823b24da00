package memory

import (
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/storagetest"
)

func TestConformance(t *testing.T) {
	// The first registry of each subtest starts a table; the others are its
	// peers.
	var mu sync.Mutex
	first := make(map[*testing.T]*Registry)
	storagetest.RunRegistry(t, func(t *testing.T, node string) storage.Registry {
		mu.Lock()
		defer mu.Unlock()
		var r *Registry
		if f := first[t]; f != nil {
			r = f.Peer(node)
		} else {
			r = NewRegistry(node)
			first[t] = r
			t.Cleanup(func() {
				mu.Lock()
				delete(first, t)
				mu.Unlock()
			})
		}
		t.Cleanup(func() { r.Close() })
		return r
	})
}

func TestDefaultNode(t *testing.T) {
	r := NewRegistry("")
	defer r.Close()
	if r.Node() == "" {
		t.Fatal("Node() is empty")
	}
	if err := r.SetResource(t.Context(), "alice@example.com", storage.Resource{Resource: "phone"}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Resources(t.Context(), "alice@example.com")
	if err != nil || len(got) != 1 || got[0].Node != r.Node() {
		t.Fatalf("Resources = %+v, %v; want one entry on node %q", got, err, r.Node())
	}
}

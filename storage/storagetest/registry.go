package storagetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// RunRegistry runs the conformance suite for storage.Registry as subtests of
// t. open returns a registry for the named node and arranges (with
// t.Cleanup) to close it; Close must tolerate being called again. The
// registries open returns for one t share their entries, as the nodes of
// one cluster do; the first call for a subtest's t starts from an empty
// registry that no other subtest sees.
//
// How entries of a node that stops without Close (a crash) expire depends on
// how a backend is kept alive, so each backend tests it in its own package.
func RunRegistry(t *testing.T, open func(t *testing.T, node string) storage.Registry) {
	t.Run("Empty", func(t *testing.T) {
		r := open(t, "node-a")
		regWantResources(t, r, "alice@example.com", nil)
	})

	t.Run("SetThenResources", func(t *testing.T) {
		r := open(t, "node-a")
		// Node is the registry's, whatever the caller says.
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Node: "elsewhere", Available: true, Priority: -1, Presence: regPresence("phone")})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "laptop"})
		regWantResources(t, r, "alice@example.com", []storage.Resource{
			{Resource: "laptop", Node: "node-a"},
			{Resource: "phone", Node: "node-a", Available: true, Priority: -1, Presence: regPresence("phone")},
		})
	})

	t.Run("Replace", func(t *testing.T) {
		r := open(t, "node-a")
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Available: true, Priority: 5, Presence: regPresence("first")})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Priority: 0})
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "phone", Node: "node-a"}})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Available: true, Priority: 127, Presence: regPresence("second")})
		regWantResources(t, r, "alice@example.com", []storage.Resource{
			{Resource: "phone", Node: "node-a", Available: true, Priority: 127, Presence: regPresence("second")},
		})
	})

	t.Run("Remove", func(t *testing.T) {
		r, ctx := open(t, "node-a"), t.Context()
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone"})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "laptop"})
		if err := r.RemoveResource(ctx, "alice@example.com", "phone"); err != nil {
			t.Fatalf("RemoveResource: %v", err)
		}
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "laptop", Node: "node-a"}})
		if err := r.RemoveResource(ctx, "alice@example.com", "laptop"); err != nil {
			t.Fatalf("RemoveResource: %v", err)
		}
		regWantResources(t, r, "alice@example.com", nil)
		// Set again after the last entry went.
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Priority: 1})
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "phone", Node: "node-a", Priority: 1}})
	})

	t.Run("RemoveMissing", func(t *testing.T) {
		r, ctx := open(t, "node-a"), t.Context()
		if err := r.RemoveResource(ctx, "nobody@example.com", "phone"); err != nil {
			t.Errorf("RemoveResource of an unknown JID: %v", err)
		}
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone"})
		if err := r.RemoveResource(ctx, "alice@example.com", "laptop"); err != nil {
			t.Errorf("RemoveResource of an unknown resource: %v", err)
		}
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "phone", Node: "node-a"}})
	})

	t.Run("SortedByResource", func(t *testing.T) {
		r := open(t, "node-a")
		// Resourceparts may hold any character, separators included.
		names := []string{"tablet", "a:b", "Phone", "laptop 2", "ü", "laptop"}
		for i, name := range names {
			regSet(t, r, "alice@example.com", storage.Resource{Resource: name, Priority: i})
		}
		regWantResources(t, r, "alice@example.com", []storage.Resource{
			{Resource: "Phone", Node: "node-a", Priority: 2},
			{Resource: "a:b", Node: "node-a", Priority: 1},
			{Resource: "laptop", Node: "node-a", Priority: 5},
			{Resource: "laptop 2", Node: "node-a", Priority: 3},
			{Resource: "tablet", Node: "node-a", Priority: 0},
			{Resource: "ü", Node: "node-a", Priority: 4},
		})
	})

	t.Run("BareJIDsIsolated", func(t *testing.T) {
		r, ctx := open(t, "node-a"), t.Context()
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Priority: 1})
		regSet(t, r, "alice@example.co", storage.Resource{Resource: "phone", Priority: 2})
		regSet(t, r, "bob@example.com", storage.Resource{Resource: "laptop", Priority: 3})
		if err := r.RemoveResource(ctx, "alice@example.co", "phone"); err != nil {
			t.Fatalf("RemoveResource: %v", err)
		}
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "phone", Node: "node-a", Priority: 1}})
		regWantResources(t, r, "alice@example.co", nil)
		regWantResources(t, r, "bob@example.com", []storage.Resource{{Resource: "laptop", Node: "node-a", Priority: 3}})
	})

	t.Run("Presence", func(t *testing.T) {
		r := open(t, "node-a")
		// Presence is opaque bytes, kept exactly; nil stays nil.
		binary := []byte("<presence xmlns='jabber:client'><status>\x00\xff\r\n😀</status></presence>")
		big := bytes.Repeat([]byte("<status>x</status>"), 4000)
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "a", Available: true, Presence: binary})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "b", Available: true, Presence: big})
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "c", Available: true, Priority: -128})
		regWantResources(t, r, "alice@example.com", []storage.Resource{
			{Resource: "a", Node: "node-a", Available: true, Presence: binary},
			{Resource: "b", Node: "node-a", Available: true, Presence: big},
			{Resource: "c", Node: "node-a", Available: true, Priority: -128},
		})
	})

	t.Run("NoAliasing", func(t *testing.T) {
		r := open(t, "node-a")
		p := regPresence("phone")
		regSet(t, r, "alice@example.com", storage.Resource{Resource: "phone", Presence: p})
		p[0] = 'X' // the caller reuses its buffer
		// What Resources returns is read only (storage.Resource.Presence):
		// a registry may share it with every reader.
		regWantResources(t, r, "alice@example.com", []storage.Resource{{Resource: "phone", Node: "node-a", Presence: regPresence("phone")}})
	})

	t.Run("TwoNodes", func(t *testing.T) {
		a, b := open(t, "node-a"), open(t, "node-b")
		regSet(t, a, "alice@example.com", storage.Resource{Resource: "phone", Available: true, Priority: 1, Presence: regPresence("phone")})
		regSet(t, b, "alice@example.com", storage.Resource{Resource: "laptop", Available: true, Priority: 2, Presence: regPresence("laptop")})
		regSet(t, b, "bob@example.com", storage.Resource{Resource: "phone"})
		want := []storage.Resource{
			{Resource: "laptop", Node: "node-b", Available: true, Priority: 2, Presence: regPresence("laptop")},
			{Resource: "phone", Node: "node-a", Available: true, Priority: 1, Presence: regPresence("phone")},
		}
		for _, r := range []storage.Registry{a, b} {
			regWantResources(t, r, "alice@example.com", want)
			regWantResources(t, r, "bob@example.com", []storage.Resource{{Resource: "phone", Node: "node-b"}})
		}
	})

	t.Run("ResourceMovesToOtherNode", func(t *testing.T) {
		a, b, ctx := open(t, "node-a"), open(t, "node-b"), t.Context()
		regSet(t, a, "alice@example.com", storage.Resource{Resource: "phone", Available: true})
		// The client reconnects through node-b with the same resource, and
		// only then does node-a notice that the old session ended: its
		// RemoveResource must leave node-b's entry alone.
		regSet(t, b, "alice@example.com", storage.Resource{Resource: "phone", Priority: 3})
		if err := a.RemoveResource(ctx, "alice@example.com", "phone"); err != nil {
			t.Fatalf("RemoveResource on the old node: %v", err)
		}
		want := []storage.Resource{{Resource: "phone", Node: "node-b", Priority: 3}}
		regWantResources(t, a, "alice@example.com", want)
		if err := a.Close(); err != nil {
			t.Fatalf("Close of the old node: %v", err)
		}
		regWantResources(t, b, "alice@example.com", want)
	})

	t.Run("Concurrent", func(t *testing.T) {
		a, b, ctx := open(t, "node-a"), open(t, "node-b"), t.Context()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		var want []storage.Resource
		for i := range 8 {
			r, node := a, "node-a"
			if i%2 == 1 {
				r, node = b, "node-b"
			}
			for j := 0; j < 10; j += 2 {
				want = append(want, storage.Resource{Resource: fmt.Sprintf("r%d-%d", i, j), Node: node, Priority: j})
			}
			wg.Go(func() {
				for j := range 10 {
					res := fmt.Sprintf("r%d-%d", i, j)
					err := r.SetResource(ctx, "alice@example.com", storage.Resource{Resource: res, Priority: j})
					if err == nil && j%2 == 1 {
						err = r.RemoveResource(ctx, "alice@example.com", res)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		slices.SortFunc(want, func(x, y storage.Resource) int { return strings.Compare(x.Resource, y.Resource) })
		regWantResources(t, a, "alice@example.com", want)
	})

	t.Run("CloseRemovesOwnEntries", func(t *testing.T) {
		a, b := open(t, "node-a"), open(t, "node-b")
		regSet(t, a, "alice@example.com", storage.Resource{Resource: "phone"})
		regSet(t, a, "bob@example.com", storage.Resource{Resource: "phone"})
		regSet(t, a, "carol@example.com", storage.Resource{Resource: "phone"})
		regSet(t, b, "alice@example.com", storage.Resource{Resource: "laptop"})
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		regWantResources(t, b, "alice@example.com", []storage.Resource{{Resource: "laptop", Node: "node-b"}})
		regWantResources(t, b, "bob@example.com", nil)
		regWantResources(t, b, "carol@example.com", nil)
		if err := a.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		// A node started later under the same name starts empty.
		c := open(t, "node-a")
		regWantResources(t, c, "bob@example.com", nil)
	})

	t.Run("UseAfterClose", func(t *testing.T) {
		r, ctx := open(t, "node-a"), t.Context()
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := r.SetResource(ctx, "alice@example.com", storage.Resource{Resource: "phone"}); err == nil {
			t.Errorf("SetResource after Close succeeded")
		}
		if _, err := r.Resources(ctx, "alice@example.com"); err == nil {
			t.Errorf("Resources after Close succeeded")
		}
	})
}

func regPresence(status string) []byte {
	return fmt.Appendf(nil, "<presence xmlns='jabber:client'><status>%s</status></presence>", status)
}

func regSet(t *testing.T, r storage.Registry, bare string, res storage.Resource) {
	t.Helper()
	if err := r.SetResource(t.Context(), bare, res); err != nil {
		t.Fatalf("SetResource(%s, %s): %v", bare, res.Resource, err)
	}
}

// regWantResources checks r.Resources(bare) against want, field by field;
// a nil Presence must come back nil.
func regWantResources(t *testing.T, r storage.Registry, bare string, want []storage.Resource) {
	t.Helper()
	got, err := r.Resources(t.Context(), bare)
	if err != nil {
		t.Fatalf("Resources(%s): %v", bare, err)
	}
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Resource == w.Resource && g.Node == w.Node && g.Available == w.Available &&
			g.Priority == w.Priority && bytes.Equal(g.Presence, w.Presence) && (g.Presence == nil) == (w.Presence == nil)
	}
	if !same {
		t.Errorf("Resources(%s):\n got %s\nwant %s", bare, regFormat(got), regFormat(want))
	}
}

func regFormat(list []storage.Resource) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, r := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		p := "nil"
		if r.Presence != nil {
			p = fmt.Sprintf("%q", r.Presence)
			if len(p) > 80 {
				p = fmt.Sprintf("%s… (%d bytes)", p[:60], len(r.Presence))
			}
		}
		fmt.Fprintf(&b, "{%q node=%q available=%t priority=%d presence=%s}", r.Resource, r.Node, r.Available, r.Priority, p)
	}
	b.WriteByte(']')
	return b.String()
}

package xmpp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/memory"
)

// loopBus is a bus between servers in one process: Publish hands the
// stanza to the named server's Receive on another goroutine, as a node's
// bus subscriber does.
type loopBus struct {
	mu    sync.Mutex
	nodes map[string]*Server
	wg    sync.WaitGroup
}

func (b *loopBus) Publish(_ context.Context, node string, st []byte) (bool, error) {
	b.mu.Lock()
	s := b.nodes[node]
	b.mu.Unlock()
	if s == nil {
		return false, nil
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		s.Receive(context.Background(), st)
	}()
	return true, nil
}

func (b *loopBus) PublishMany(ctx context.Context, msgs []storage.BusMessage) ([]bool, error) {
	taken := make([]bool, len(msgs))
	for i, m := range msgs {
		taken[i], _ = b.Publish(ctx, m.Node, m.Payload)
	}
	return taken, nil
}

// clusterOf starts servers named names that share a registry and a
// loopBus; their sessions are idle ones (idleSession), registered by the
// test in the registry too (inRegistry).
func clusterOf(t *testing.T, names ...string) []*Server {
	t.Helper()
	bus := &loopBus{nodes: map[string]*Server{}}
	reg := memory.NewRegistry(names[0])
	var out []*Server
	for i, n := range names {
		r := reg
		if i > 0 {
			r = reg.Peer(n)
		}
		s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			SessionRegistry: r, NodeName: n, Bus: bus, PingInterval: -1}
		s.init()
		bus.mu.Lock()
		bus.nodes[n] = s
		bus.mu.Unlock()
		out = append(out, s)
	}
	t.Cleanup(func() {
		bus.wg.Wait()
		for _, s := range out {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.Shutdown(ctx)
			cancel()
		}
	})
	return out
}

// inRegistry records sess in the registry as the roster module does, with
// its presence.
func inRegistry(t *testing.T, sess *Session) {
	t.Helper()
	ok, prio := sess.Available()
	err := sess.srv.registry.SetResource(context.Background(), sess.bare, storage.Resource{
		Resource: sess.jid.Resourcepart(), Node: sess.srv.node, Available: ok, Priority: prio})
	if err != nil {
		t.Fatal(err)
	}
}

// A resumption id made on a cluster names its node; any other id names
// none.
func TestSMIDNamesNode(t *testing.T) {
	s := &Server{Bus: &loopBus{}, node: "node-a.example:1"}
	id := s.newSMID()
	if n, ok := smNode(id); !ok || n != "node-a.example:1" {
		t.Errorf("smNode(%q) = %q, %v", id, n, ok)
	}
	single := (&Server{node: "solo"}).newSMID()
	for _, id := range []string{single, "", "abc.", "abc.!!!", "abc"} {
		if n, ok := smNode(id); ok {
			t.Errorf("smNode(%q) = %q, want none", id, n)
		}
	}
}

// The session limit counts the account's sessions on other nodes; a
// resource bound again replaces its session whatever the count.
func TestRegisterCountsElsewhere(t *testing.T) {
	s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PingInterval: -1}
	s.init()
	one := idleSession(s, "alice@example.com/one")
	for _, c := range []struct {
		full      string
		elsewhere int
		ok        bool
	}{
		{"alice@example.com/two", 2, false}, // 1 here + 2 elsewhere = the max of 3
		{"alice@example.com/two", 1, true},
		{"alice@example.com/one", 5, true}, // replaces, not one more
	} {
		j := jid.MustParse(c.full)
		sess := &Session{srv: s, jid: j, full: j.String(), bare: j.Bare().String(), closing: make(chan struct{})}
		replaced, ok := s.router.register(sess, 3, c.elsewhere)
		if ok != c.ok {
			t.Errorf("%s with %d elsewhere: ok %v, want %v", c.full, c.elsewhere, ok, c.ok)
		}
		if c.full == one.full && replaced != one {
			t.Errorf("binding %s again replaced %v", c.full, replaced)
		}
	}
}

// elsewhere counts the account's sessions on the other nodes and names
// the node that holds the resource being bound.
func TestElsewhere(t *testing.T) {
	srv := clusterOf(t, "a", "b", "c")
	a, b, c := srv[0], srv[1], srv[2]
	inRegistry(t, idleSession(a, "alice@example.com/here"))
	inRegistry(t, idleSession(b, "alice@example.com/desk"))
	inRegistry(t, idleSession(c, "alice@example.com/phone"))
	inRegistry(t, idleSession(c, "bob@example.com/phone"))
	if n, holder := a.elsewhere(context.Background(), "alice@example.com", "phone"); n != 1 || holder != "c" {
		t.Errorf("binding phone on a: %d elsewhere, held on %q; want 1 and c", n, holder)
	}
	if n, holder := a.elsewhere(context.Background(), "alice@example.com", "laptop"); n != 2 || holder != "" {
		t.Errorf("binding laptop on a: %d elsewhere, held on %q; want 2 and none", n, holder)
	}
}

// A question to another node gets its answer; one to a node that is not
// there gets none at once.
func TestAskNode(t *testing.T) {
	srv := clusterOf(t, "a", "b")
	a := srv[0]
	start := time.Now()
	if ans := a.askNode(context.Background(), "nowhere", NewElement(NSCluster, opReplace, "jid", "x@example.com/y")); ans != nil {
		t.Errorf("an answer from no node: %s", ans)
	}
	if d := time.Since(start); d > clusterWait/2 {
		t.Errorf("asking a node that is not there took %v", d)
	}
	// b has no session of that JID: it answers at once.
	if ans := a.askNode(context.Background(), "b", NewElement(NSCluster, opReplace, "jid", "x@example.com/y")); ans == nil || ans.Local != opAnswer {
		t.Errorf("b's answer: %v", ans)
	}
}

// Replacing a session on another node ends it there with <conflict/>
// before the answer comes back.
func TestReplaceOnOtherNode(t *testing.T) {
	srv := clusterOf(t, "a", "b")
	a, b := srv[0], srv[1]
	old := idleSession(b, "alice@example.com/desk")
	raw, peer := net.Pipe()
	t.Cleanup(func() { peer.Close() })
	old.cur.Store(&conn{srv: b, raw: raw})
	b.wg.Add(1) // what serve holds for a session; its end gives it back
	go func() {
		<-old.closing
		old.end(nil)
	}()
	a.replaceOn("b", old.full)
	select {
	case <-old.ended:
	default:
		t.Fatal("the answer came before the session on b ended")
	}
	if b.router.session(old.jid) != nil {
		t.Error("the replaced session is still routable on b")
	}
}

// Reach sees the resources of every node as the router routes to them
// (RFC 6121 §8.5): a full JID's session wherever it is, a bare JID's
// highest priority over all nodes, and the nodes holding the account.
func TestReach(t *testing.T) {
	srv := clusterOf(t, "a", "b", "c")
	a, b := srv[0], srv[1]
	withPrio := func(s *Server, full string, avail bool, prio int) {
		sess := idleSession(s, full)
		sess.available, sess.priority = avail, prio
		inRegistry(t, sess)
	}
	withPrio(a, "alice@example.com/desk", true, 1)
	withPrio(b, "alice@example.com/phone", true, 5)
	withPrio(b, "alice@example.com/tablet", true, 5)
	withPrio(b, "alice@example.com/away", false, 9)
	msg := func(typ string) *Element { return NewElement(NSClient, "message", "type", typ) }
	for _, c := range []struct {
		to     string
		typ    string
		direct []string
	}{
		{"alice@example.com/desk", "chat", []string{"desk"}},
		{"alice@example.com/phone", "chat", []string{"phone"}},
		{"alice@example.com", "chat", []string{"phone", "tablet"}},
		{"alice@example.com/gone", "chat", []string{"phone", "tablet"}},
		{"alice@example.com/away", "chat", []string{"phone", "tablet"}}, // unavailable elsewhere: as toRemoteFull
		{"alice@example.com", "headline", []string{"desk", "phone", "tablet"}},
		{"alice@example.com", "groupchat", nil},
		{"alice@example.com/gone", "error", nil},
	} {
		r := a.router.Reach(context.Background(), jid.MustParse(c.to), msg(c.typ))
		slices.Sort(r.Direct)
		if !slices.Equal(r.Direct, c.direct) {
			t.Errorf("%s %s: direct %v, want %v", c.typ, c.to, r.Direct, c.direct)
		}
		if !slices.Equal(r.Nodes, []string{"b"}) {
			t.Errorf("%s %s: nodes %v, want [b]", c.typ, c.to, r.Nodes)
		}
	}
	if n := a.router.AccountNodes(context.Background(), jid.MustParse("alice@example.com")); !slices.Equal(n, []string{"b"}) {
		t.Errorf("AccountNodes: %v", n)
	}
}

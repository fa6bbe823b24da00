package redis

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis/redistest"
)

// openBus opens a bus for node on the test server under t's prefix and
// closes it when t ends.
func openBus(t *testing.T, o BusOptions) *Bus {
	t.Helper()
	o.Addr = redistest.Addr(t)
	o.Prefix = redistest.Prefix(t)
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := OpenBus(t.Context(), o)
	if err != nil {
		t.Fatalf("OpenBus: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// inbox collects what a bus's handler is given.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (in *inbox) handle(p []byte) {
	in.mu.Lock()
	in.got = append(in.got, string(p))
	in.mu.Unlock()
}

func (in *inbox) list() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got)
}

func (in *inbox) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.got)
}

func serve(t *testing.T, b *Bus) *inbox {
	t.Helper()
	in := &inbox{}
	if err := b.Serve(t.Context(), in.handle); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return in
}

func publish(t *testing.T, b *Bus, node, payload string) bool {
	t.Helper()
	ok, err := b.Publish(t.Context(), node, []byte(payload))
	if err != nil {
		t.Fatalf("Publish(%s, %s): %v", node, payload, err)
	}
	return ok
}

func numbered(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i)
	}
	return s
}

// Two nodes exchange payloads both ways, singly and in batches, each
// arriving in order; a node that is not there takes nothing.
func TestBusExchange(t *testing.T) {
	a, b := openBus(t, BusOptions{Node: "a"}), openBus(t, BusOptions{Node: "b"})
	inA, inB := serve(t, a), serve(t, b)
	const n = 500
	var wg sync.WaitGroup
	for _, c := range []struct {
		from *Bus
		to   string
	}{{a, "b"}, {b, "a"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range numbered("single-", n) {
				if ok, err := c.from.Publish(t.Context(), c.to, []byte(p)); err != nil || !ok {
					t.Errorf("Publish to %s = %t, %v", c.to, ok, err)
					return
				}
			}
			var msgs []storage.BusMessage
			for _, p := range numbered("batch-", n) {
				msgs = append(msgs, storage.BusMessage{Node: c.to, Payload: []byte(p)})
			}
			received, err := c.from.PublishMany(t.Context(), msgs)
			if err != nil || len(received) != n || slices.Contains(received, false) {
				t.Errorf("PublishMany to %s: %d received, false among them %t, %v", c.to, len(received), slices.Contains(received, false), err)
			}
		}()
	}
	wg.Wait()
	want := append(numbered("single-", n), numbered("batch-", n)...)
	for name, in := range map[string]*inbox{"a": inA, "b": inB} {
		await(t, 5*time.Second, "all delivered to "+name, func() bool { return in.len() >= len(want) })
		if got := in.list(); !slices.Equal(got, want) {
			t.Errorf("%s got %d payloads, not the %d published in order; first: %q", name, len(got), len(want), got[:min(5, len(got))])
		}
	}

	if publish(t, a, "c", "hello") {
		t.Error("Publish to a node that is not there: received")
	}
	received, err := a.PublishMany(t.Context(), []storage.BusMessage{
		{Node: "b", Payload: []byte("x")}, {Node: "c", Payload: []byte("y")}, {Node: "a", Payload: []byte("z")},
	})
	if err != nil || !slices.Equal(received, []bool{true, false, true}) {
		t.Errorf("PublishMany to b, c, a = %v, %v; want [true false true]", received, err)
	}
	if err := a.Serve(t.Context(), func([]byte) {}); err == nil {
		t.Error("Serve again succeeded")
	}
}

// busGoroutines returns the stacks of the goroutines running the Bus's
// code or a handler of this test file.
func busGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "storage/redis.(*Bus).") || strings.Contains(g, "storage/redis.(*inbox).handle") {
			found = append(found, g)
		}
	}
	return found
}

// A node that closes takes nothing once Close has returned, its goroutines
// have ended, and it refuses to publish.
func TestBusClose(t *testing.T) {
	a, b := openBus(t, BusOptions{Node: "a"}), openBus(t, BusOptions{Node: "b"})
	inB := serve(t, b)
	if !publish(t, a, "b", "before") {
		t.Fatal("Publish to a serving node: not received")
	}
	await(t, 5*time.Second, "delivered", func() bool { return inB.len() == 1 })
	if len(busGoroutines()) == 0 {
		t.Fatal("no goroutine of the bus found while serving: the leak check below would prove nothing")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if g := busGoroutines(); len(g) > 0 {
		t.Errorf("after Close, %d goroutines of the bus are left:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	if publish(t, a, "b", "after") {
		t.Error("Publish to a closed node: received")
	}
	if got := inB.list(); !slices.Equal(got, []string{"before"}) {
		t.Errorf("closed node got %q", got)
	}
	if _, err := b.Publish(t.Context(), "a", []byte("x")); err == nil {
		t.Error("a closed bus published")
	}
	if err := b.Serve(t.Context(), func([]byte) {}); err == nil {
		t.Error("a closed bus served")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

// killSubscriber kills the pub/sub connection of the bus of node with
// CLIENT KILL, as a Redis restart or a network cut would, and returns its
// client ID.
func killSubscriber(t *testing.T, b *Bus, node string) string {
	t.Helper()
	list, err := b.client.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		f := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["name"] == clientName("xmppd-bus-"+node) && f["sub"] != "0" && f["sub"] != "" {
			if id != "" {
				t.Fatalf("two subscribers named for %s: %s and %s", node, id, f["id"])
			}
			id = f["id"]
		}
	}
	if id == "" {
		t.Fatalf("no subscriber of %s in CLIENT LIST:\n%s", node, list)
	}
	if err := b.client.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
		t.Fatalf("CLIENT KILL ID %s: %v", id, err)
	}
	return id
}

// After its connection is killed, a node subscribes again and receives
// what is published from then on.
func TestBusReconnects(t *testing.T) {
	a, b := openBus(t, BusOptions{Node: "a"}), openBus(t, BusOptions{Node: "b node"})
	inB := serve(t, b)
	for round := range 2 {
		subs := b.subscribed.Load()
		killSubscriber(t, b, "b node")
		// Published while b is away: lost (received=false), or taken by
		// the new subscription.
		n := 0
		await(t, 5*time.Second, "subscribed again", func() bool {
			n++
			return publish(t, a, "b node", fmt.Sprintf("%d-%d", round, n))
		})
		want := fmt.Sprintf("%d-%d", round, n)
		await(t, 5*time.Second, "delivered after the kill", func() bool {
			got := inB.list()
			return len(got) > 0 && got[len(got)-1] == want
		})
		// The confirmation came before the payload.
		if got := b.subscribed.Load(); got != subs+1 {
			t.Errorf("subscriptions: %d, then %d after the kill; want one more", subs, got)
		}
	}
}

// A handler slower than the payloads: the queue holds what it bounds and
// the rest is dropped and counted; what was queued arrives in order, and
// payloads flow again once the handler catches up.
func TestBusSlowHandler(t *testing.T) {
	const payload = "0123456789"
	for _, c := range []struct {
		name string
		o    BusOptions
	}{
		{"queue", BusOptions{Queue: 4}},
		{"bytes", BusOptions{QueueBytes: 4 * (len(payload) + 3)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := openBus(t, BusOptions{Node: "a"})
			c.o.Node = "b"
			b := openBus(t, c.o)
			entered, release := make(chan struct{}), make(chan struct{})
			in := &inbox{}
			err := b.Serve(t.Context(), func(p []byte) {
				if in.len() == 0 {
					close(entered)
					<-release
				}
				in.handle(p)
			})
			if err != nil {
				t.Fatal(err)
			}
			all := make([]string, 20)
			for i := range all {
				all[i] = fmt.Sprintf("%03d%s", i, payload)
			}
			publish(t, a, "b", all[0])
			<-entered
			for _, p := range all[1:] {
				if !publish(t, a, "b", p) {
					t.Fatal("not received")
				}
			}
			// The handler holds 1, the queue 4: 15 dropped.
			await(t, 5*time.Second, "dropped 15", func() bool { return b.Dropped() >= 15 })
			close(release)
			await(t, 5*time.Second, "delivered 5", func() bool { return in.len() >= 5 })
			publish(t, a, "b", "last")
			await(t, 5*time.Second, "delivered the last", func() bool { return in.len() >= 6 })
			if got, want := in.list(), append(slices.Clone(all[:5]), "last"); !slices.Equal(got, want) {
				t.Errorf("delivered %q; want %q", got, want)
			}
			if n := b.Dropped(); n != 15 {
				t.Errorf("Dropped() = %d; want 15", n)
			}
		})
	}
}

// A connection that goes silent without closing (the peer vanished) is
// found out by the PING the bus sends after b.health of silence, and
// replaced.
func TestBusSilentConnection(t *testing.T) {
	target := redistest.Addr(t)
	if strings.Contains(target, "://") {
		t.Skip("the proxy needs XMPPD_TEST_REDIS as host:port")
	}
	p := startProxy(t, target)
	a := openBus(t, BusOptions{Node: "a"})
	b, err := OpenBus(t.Context(), BusOptions{Addr: p.addr, Prefix: redistest.Prefix(t), Node: "b",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.health = 200 * time.Millisecond
	in := serve(t, b)
	p.freeze()
	// Redis still counts the frozen subscriber, so received says nothing
	// here: what counts is that a payload arrives again.
	n := 0
	await(t, 10*b.health+5*time.Second, "delivered after the freeze", func() bool {
		n++
		publish(t, a, "b", strconv.Itoa(n))
		return in.len() > 0
	})
	if s := b.subscribed.Load(); s < 2 {
		t.Errorf("subscriptions: %d; want a second one on a new connection", s)
	}
}

package redis

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/storage/storagetest"
)

// testTTL is short so that a crashed node's entries go quickly.
const testTTL = time.Second

func TestConformance(t *testing.T) {
	storagetest.RunRegistry(t, func(t *testing.T, node string) storage.Registry {
		return open(t, Options{Node: node})
	})
}

// open opens a registry on the test server under t's prefix (so registries
// opened with one t share their keys) and closes it when t ends.
func open(t *testing.T, o Options) *Registry {
	t.Helper()
	if o.Addr == "" {
		o.Addr = redistest.Addr(t)
	}
	if o.Prefix == "" {
		o.Prefix = redistest.Prefix(t)
	}
	if o.TTL == 0 {
		o.TTL = testTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r, err := Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// crash ends r as a killed process would: the heartbeat stops and the
// connections close, and nothing is removed.
func (r *Registry) crash() {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.stop()
		<-r.done
		r.closeErr = r.client.Close()
	})
}

// await polls cond until it holds, failing the test after d.
func await(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resources returns bare's resources as "name@node" strings.
func resources(t *testing.T, r *Registry, bare string) string {
	t.Helper()
	list, err := r.Resources(t.Context(), bare)
	if err != nil {
		t.Fatalf("Resources(%s): %v", bare, err)
	}
	var s []string
	for _, res := range list {
		s = append(s, res.Resource+"@"+res.Node)
	}
	return strings.Join(s, " ")
}

func set(t *testing.T, r *Registry, bare, resource string) {
	t.Helper()
	if err := r.SetResource(t.Context(), bare, storage.Resource{Resource: resource, Available: true}); err != nil {
		t.Fatalf("SetResource(%s, %s): %v", bare, resource, err)
	}
}

func TestCrashedNodeExpires(t *testing.T) {
	a, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b"})
	set(t, a, "alice@example.com", "phone")
	set(t, a, "bob@example.com", "phone")
	set(t, b, "alice@example.com", "laptop")
	a.crash()
	crashed := time.Now()
	// The TTL is counted from a's last beat, at most TTL/3 ago.
	if got := resources(t, b, "alice@example.com"); got != "laptop@b phone@a" && time.Since(crashed) < testTTL/2 {
		t.Errorf("right after the crash: %q", got)
	}
	await(t, testTTL+time.Second, "rid of the crashed node's entries", func() bool {
		return resources(t, b, "alice@example.com") == "laptop@b"
	})
	if d := time.Since(crashed); d < testTTL/2 {
		t.Errorf("entries vanished %v after the crash, before the TTL (%v)", d, testTTL)
	}
	// The reader deleted them, too.
	ctx := t.Context()
	if ok, err := b.client.HExists(ctx, b.presKey("alice@example.com"), "phone").Result(); err != nil || ok {
		t.Errorf("HEXISTS of the dead entry = %t, %v; want false", ok, err)
	}
	if got := resources(t, b, "bob@example.com"); got != "" {
		t.Errorf("bob: %q; want none", got)
	}
	if n, err := b.client.Exists(ctx, b.presKey("bob@example.com"), a.nodeKey).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS of bob's hash and a's node key = %d, %v; want 0", n, err)
	}
	// The index outlives the node key by a TTL (idxTTL), for watchers.
	await(t, idxTTL(testTTL), "rid of the crashed node's index", func() bool {
		n, err := b.client.Exists(ctx, a.idxKey).Result()
		return err == nil && n == 0
	})
}

// A node restarted under the same name is a new incarnation: it does not
// revive the entries of its previous life, nor remove them.
func TestRestartedNodeIsNew(t *testing.T) {
	a1, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b"})
	set(t, a1, "alice@example.com", "phone")
	a1.crash()
	a2 := open(t, Options{Node: "a"})
	set(t, a2, "alice@example.com", "tablet")
	if err := a2.RemoveResource(t.Context(), "alice@example.com", "phone"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.client.HExists(t.Context(), b.presKey("alice@example.com"), "phone").Result(); err != nil || !ok {
		t.Errorf("the new incarnation removed the old one's entry: HEXISTS = %t, %v", ok, err)
	}
	await(t, testTTL+time.Second, "rid of the previous incarnation's entry", func() bool {
		return resources(t, b, "alice@example.com") == "tablet@a"
	})
}

// When Redis loses the node's keys (a restart without persistence, or a
// heartbeat stalled past the TTL), the heartbeat writes the entries again.
func TestLostKeysAreWrittenAgain(t *testing.T) {
	a, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b"})
	set(t, a, "alice@example.com", "phone")
	set(t, a, "alice@example.com", "tablet")
	set(t, a, "bob@example.com", "phone")
	set(t, b, "alice@example.com", "laptop")
	if err := a.RemoveResource(t.Context(), "alice@example.com", "tablet"); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the resource moved to b: a must not take it back.
	set(t, b, "bob@example.com", "phone")
	lost := make(chan struct{}, 1)
	a.OnLost(func() {
		select {
		case lost <- struct{}{}:
		default:
		}
	})
	ctx := t.Context()
	if err := b.client.Del(ctx, a.nodeKey, a.idxKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.client.HDel(ctx, a.presKey("alice@example.com"), "phone").Err(); err != nil {
		t.Fatal(err)
	}
	await(t, 2*testTTL, "written again", func() bool {
		return resources(t, b, "alice@example.com") == "laptop@b phone@a"
	})
	// The node learns that it was taken for gone, so that its sessions
	// can announce themselves again.
	select {
	case <-lost:
	case <-time.After(2 * testTTL):
		t.Fatal("OnLost was not called after the node's key had gone")
	}
	if got := resources(t, b, "bob@example.com"); got != "phone@b" {
		t.Errorf("bob: %q; want phone@b", got)
	}
	if n, err := b.client.Exists(ctx, a.nodeKey, a.idxKey).Result(); err != nil || n != 2 {
		t.Errorf("EXISTS of a's node keys = %d, %v; want 2", n, err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := resources(t, b, "alice@example.com"); got != "laptop@b" {
		t.Errorf("after Close: %q; want laptop@b", got)
	}
	if got := resources(t, b, "bob@example.com"); got != "phone@b" {
		t.Errorf("bob after Close: %q; want phone@b", got)
	}
}

// While Redis is unreachable, writes fail; once it answers, the heartbeat
// catches up. The heartbeat logs the outage and the recovery, and nothing
// at info level while all is well.
func TestUnreachable(t *testing.T) {
	target := redistest.Addr(t)
	if strings.Contains(target, "://") {
		t.Skip("the proxy needs XMPPD_TEST_REDIS as host:port")
	}
	p := startProxy(t, target)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := open(t, Options{Addr: p.addr, Node: "a", Logger: logger})
	b := open(t, Options{Node: "b"})
	set(t, a, "alice@example.com", "phone")
	awaitBeats(t, b, a.nodeKey, 3)
	if logs.String() != "" {
		t.Errorf("heartbeat logged while Redis answered:\n%s", logs.String())
	}

	p.stop()
	ctx := t.Context()
	err := a.SetResource(ctx, "alice@example.com", storage.Resource{Resource: "tablet"})
	if err == nil {
		t.Fatal("SetResource succeeded with Redis unreachable")
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("SetResource error wraps nothing: %v", err)
	}
	if err := a.RemoveResource(ctx, "alice@example.com", "phone"); err == nil {
		t.Fatal("RemoveResource succeeded with Redis unreachable")
	}
	if _, err := a.Resources(ctx, "alice@example.com"); err == nil {
		t.Fatal("Resources succeeded with Redis unreachable")
	}
	await(t, 2*testTTL, "warned", func() bool {
		return strings.Contains(logs.String(), "level=WARN msg=\"presence registry: heartbeat failed")
	})

	p.restart(t)
	await(t, 3*testTTL, "caught up", func() bool {
		return resources(t, b, "alice@example.com") == "tablet@a"
	})
	await(t, testTTL, "logged the recovery", func() bool { return strings.Contains(logs.String(), "heartbeat recovered") })
}

// awaitBeats waits until the heartbeat has refreshed key n times, as seen
// by the key's remaining TTL going up.
func awaitBeats(t *testing.T, r *Registry, key string, n int) {
	t.Helper()
	last := time.Duration(0)
	await(t, time.Duration(n+1)*testTTL, "beaten", func() bool {
		d, err := r.client.PTTL(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d > last {
			n--
		}
		last = d
		return n < 0
	})
}

func TestOpen(t *testing.T) {
	ctx := t.Context()
	if _, err := Open(ctx, Options{Addr: "127.0.0.1:1", TTL: time.Millisecond}); err == nil {
		t.Error("Open accepted a TTL below MinTTL")
	}
	_, err := Open(ctx, Options{Addr: "redis://xmppd:s3cret@127.0.0.1:1/0"})
	if err == nil {
		t.Fatal("Open succeeded with nothing listening")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}

	addr := redistest.Addr(t)
	if !strings.Contains(addr, "://") {
		addr = "redis://" + addr + "/0"
	}
	r := open(t, Options{Addr: addr})
	if r.Node() == "" || r.ttl != testTTL {
		t.Errorf("Node() = %q, ttl = %v", r.Node(), r.ttl)
	}
	r2 := open(t, Options{})
	if r2.Node() != r.Node() {
		t.Errorf("default Node() differs in one process: %q, %q", r.Node(), r2.Node())
	}
}

// proxy forwards TCP connections to a Redis server until stopped.
type proxy struct {
	target string
	addr   string
	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]bool
	// frozen connections forward nothing, as a link to a peer that
	// vanished without a FIN or RST.
	frozen map[net.Conn]bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, addr: "127.0.0.1:0"}
	p.restart(t)
	p.addr = p.ln.Addr().String()
	t.Cleanup(p.stop)
	return p
}

// restart listens again on the same address.
func (p *proxy) restart(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.conns = make(map[net.Conn]bool)
	p.frozen = make(map[net.Conn]bool)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Add(2)
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
}

func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isFrozen(src) {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *proxy) isFrozen(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen[c]
}

// freeze makes every connection open now forward nothing from then on,
// and leaves them open; later connections work.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		p.frozen[c] = true
	}
}

// stop closes the listener and every connection, and waits for the
// goroutines. Stopping again does nothing.
func (p *proxy) stop() {
	p.mu.Lock()
	if p.conns != nil {
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestLocker: two nodes on one Redis take turns on a key: increments of a
// shared counter made under the lock from both are never lost, a waiter
// gives up when its context ends, and a holder whose lock expired and was
// taken does not free the new holder's.
func TestLocker(t *testing.T) {
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	open := func(node string) *Registry {
		r, err := Open(t.Context(), Options{Addr: addr, Prefix: prefix, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := open("a").Locker(), open("b").Locker()
	// Load and Store, not Add: the lock alone must keep the read and the
	// write together (atomics only keep the race detector quiet).
	var counter atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*Locker{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				unlock, err := l.Lock(t.Context(), "roster:alice@example.com")
				if err != nil {
					t.Error(err)
					return
				}
				v := counter.Load()
				time.Sleep(10 * time.Microsecond) // a read-modify-write that takes time
				counter.Store(v + 1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if n := counter.Load(); n != 200 {
		t.Fatalf("counter %d after 200 locked increments: the lock let two in", n)
	}
	unlock, err := a.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(ctx, "k"); err == nil {
		t.Fatal("a second holder got a held lock")
	}
	// a's lock expires and b takes it: a's unlock must leave b's alone.
	a.client.Del(t.Context(), a.prefix+"k")
	unlockB, err := b.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	ctx2, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if _, err := a.Lock(ctx2, "k"); err == nil {
		t.Fatal("a stale holder freed the new holder's lock")
	}
	unlockB()
	if unlock, err := a.Lock(t.Context(), "k"); err != nil {
		t.Fatal(err)
	} else {
		unlock()
	}
}

// A node found alive is taken for alive for seenFor without asking Redis
// again (routing reads the registry for every message to another node);
// after that, a node whose key is gone no longer counts.
func TestNodeAliveCache(t *testing.T) {
	a, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b"})
	set(t, a, "alice@example.com", "phone")
	if got := resources(t, b, "alice@example.com"); got != "phone@a" {
		t.Fatalf("before: %q", got)
	}
	a.crash() // no heartbeat writes the key again
	if err := b.client.Del(t.Context(), a.nodeKey).Err(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if got := resources(t, b, "alice@example.com"); got != "phone@a" && time.Since(deleted) < seenFor/2 {
		t.Fatalf("read at once after the node key went: %q; want the cached phone@a", got)
	}
	await(t, 3*seenFor, "the entry of the node whose key is gone", func() bool {
		return resources(t, b, "alice@example.com") == ""
	})
	if since := time.Since(deleted); since < seenFor {
		t.Errorf("the entry went after %v, before seenFor %v: the cache was not used", since, seenFor)
	}
}

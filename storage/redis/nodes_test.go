package redis

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func nodes(t *testing.T, r *Registry) string {
	t.Helper()
	list, err := r.Nodes(t.Context())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	return strings.Join(list, " ")
}

// Nodes lists the live nodes, and drops one that stopped without Close
// within the TTL, and one that closed at once.
func TestNodes(t *testing.T) {
	a, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b:1"})
	c := open(t, Options{Node: "c"})
	if got := nodes(t, a); got != "a b:1 c" {
		t.Fatalf("Nodes = %q; want a b:1 c", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := nodes(t, a); got != "a b:1" {
		t.Errorf("after c closed: Nodes = %q; want a b:1", got)
	}
	b.crash()
	crashed := time.Now()
	await(t, testTTL+time.Second, "rid of the crashed node", func() bool { return nodes(t, a) == "a" })
	if d := time.Since(crashed); d < testTTL/2 {
		t.Errorf("the crashed node went %v after the crash, before the TTL (%v)", d, testTTL)
	}
	// Its member of the node list goes once its index has gone too.
	await(t, idxTTL(testTTL)+time.Second, "the node list pruned", func() bool {
		nodes(t, a)
		n, err := a.client.SCard(t.Context(), a.nodesKey()).Result()
		return err == nil && n == 1
	})
	if _, err := b.Nodes(t.Context()); err == nil {
		t.Error("a closed registry listed the nodes")
	}
}

// WatchNodes reports the nodes there are, then a node that crashed with
// its sessions (not those it had ended, nor those bound elsewhere since),
// a node restarted under the same name, and a node that closed without
// sessions.
func TestWatchNodes(t *testing.T) {
	a, b, c := open(t, Options{Node: "a"}), open(t, Options{Node: "b"}), open(t, Options{Node: "c"})
	set(t, b, "alice@example.com", "phone")
	set(t, b, "alice@example.com", "tablet")
	set(t, b, "bob@example.com", "laptop")
	set(t, b, "carol@example.com", "desk")
	set(t, b, "dave@example.com", "pc")
	if err := b.RemoveResource(t.Context(), "dave@example.com", "pc"); err != nil {
		t.Fatal(err)
	}
	events := make(chan NodeEvent, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.WatchNodes(ctx, func(e NodeEvent) { events <- e }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchNodes: %v", err)
		}
	})
	next := func(what string) NodeEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(2 * testTTL):
			t.Fatalf("no event: %s", what)
			return NodeEvent{}
		}
	}
	binc := b.member[len("b:"):]
	if e := next("b alive"); e.Node != "b" || !e.Alive || e.Incarnation != binc || e.Sessions != nil {
		t.Errorf("first event: %+v; want b alive", e)
	}
	if e := next("c alive"); e.Node != "c" || !e.Alive {
		t.Errorf("second event: %+v; want c alive", e)
	}

	b.crash()
	crashed := time.Now()
	// carol binds desk again, on c, before b's death is seen.
	set(t, c, "carol@example.com", "desk")
	e := next("b dead")
	if d := time.Since(crashed); d < testTTL/2 || d > testTTL+testTTL/3+time.Second/2 {
		t.Errorf("b's death reported %v after the crash; want after the TTL (%v), within a poll of it", d, testTTL)
	}
	want := NodeEvent{Node: "b", Incarnation: binc, Sessions: map[string][]string{
		"alice@example.com": {"phone", "tablet"},
		"bob@example.com":   {"laptop"},
	}}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("b's death: %+v; want %+v", e, want)
	}

	b2 := open(t, Options{Node: "b"})
	if e := next("b again"); e.Node != "b" || !e.Alive || e.Incarnation == binc || e.Incarnation != b2.member[len("b:"):] {
		t.Errorf("after b restarted: %+v; want b alive, a new incarnation", e)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if e := next("c closed"); e.Node != "c" || e.Alive || e.Sessions != nil {
		t.Errorf("after c closed: %+v; want c gone without sessions", e)
	}
	select {
	case e := <-events:
		t.Errorf("unexpected event: %+v", e)
	default:
	}
}

// WatchNodes ends when its context does (nil) or when the registry closes
// (an error).
func TestWatchNodesEnds(t *testing.T) {
	a := open(t, Options{Node: "a"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.WatchNodes(ctx, func(NodeEvent) {}) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("WatchNodes after cancel: %v", err)
	}
	go func() { done <- a.WatchNodes(t.Context(), func(NodeEvent) {}) }()
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, errClosed) {
			t.Errorf("WatchNodes after Close: %v; want errClosed", err)
		}
	case <-time.After(testTTL):
		t.Error("WatchNodes went on after Close")
	}
}

package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/storage/sqlite"
	"github.com/xmppd/xmppd/xmpp"
)

// TestRedisPresenceAfterKill9 runs xmppd with its presence in Redis, kills
// it with SIGKILL while a client is online, and checks that the session's
// presence is gone from the registry once the TTL has passed, so that
// another node tells a contact the account is unavailable.
func TestRedisPresenceAfterKill9(t *testing.T) {
	const ttl = 2 * time.Second
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	data := t.TempDir()
	conf := filepath.Join(data, "xmppd.yaml")
	writeConfig := func(node string) {
		err := os.WriteFile(conf, fmt.Appendf(nil, "domain: localhost\npresence:\n  backend: redis\n  redis: %q\n  redis_prefix: %q\n  node: %s\n  ttl: %s\n",
			addr, prefix, node, ttl), 0o600)
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, out := xmppctl(t, "-data", data, "user", "add", u, "pw"); code != 0 {
			t.Fatalf("xmppctl user add %s: exit %d: %s", u, code, out)
		}
	}
	// alice and bob see each other's presence.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(data, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	befriend(t, st, "alice@localhost", "bob@localhost")
	st.Close()

	observer, err := redis.Open(ctx, redis.Options{Addr: addr, Prefix: prefix, Node: "observer", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	resources := func() []storage.Resource {
		t.Helper()
		rs, err := observer.Resources(ctx, "bob@localhost")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}

	writeConfig("node-a")
	a := startServer(t, data, "-config", conf)
	ms, _, err := a.login(t, "bob@localhost", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	await(t, "bob available in Redis", func() bool {
		rs := resources()
		return len(rs) == 1 && rs[0].Available && rs[0].Node == "node-a"
	})

	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	killed := time.Now()
	if rs := resources(); len(rs) != 1 {
		// Not an error in itself, but then this test proves nothing about
		// the TTL: the entry must outlive a process that cannot clean up.
		t.Fatalf("bob's entry was gone at once after kill -9: %v", rs)
	}
	await(t, "bob's entry expiring", func() bool { return len(resources()) == 0 })
	if gone := time.Since(killed); gone > ttl+time.Second {
		t.Errorf("the entry outlived its node by %v, TTL %v", gone, ttl)
	}

	// Another node answers alice's probe: bob is unavailable, not stale.
	writeConfig("node-b")
	b := startServer(t, data, "-config", conf)
	alice, _, err := b.login(t, "alice@localhost", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	el := expect(t, alice, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") != alice.LocalAddr().String()
	})
	if el.Get("from") != "bob@localhost" || el.Get("type") != "unavailable" {
		t.Fatalf("alice got %s, want unavailable from bob@localhost", el)
	}
}

// expect reads ms's stream until a stanza that match accepts.
func expect(t *testing.T, ms *mxmpp.Session, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	r := ms.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			t.Fatalf("reading %s's stream: %v", ms.LocalAddr(), err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		el, err := xmpp.ReadElement(r, start)
		if err != nil {
			t.Fatal(err)
		}
		if match(el) {
			return el
		}
	}
}

// TestXmppctlGroupPush changes a team with xmppctl, another process, while
// xmppd runs on its embedded database: the members online get the roster
// push at once.
func TestXmppctlGroupPush(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, out := xmppctl(t, "-data", data, "user", "add", u, "pw"); code != 0 {
			t.Fatalf("xmppctl user add %s: exit %d: %s", u, code, out)
		}
	}
	alice, _, err := s.login(t, "alice@localhost", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := alice.Send(ctx, stanza.IQ{ID: "r1", Type: stanza.GetIQ}.Wrap(xmlstream.Wrap(nil,
		xml.StartElement{Name: xml.Name{Space: xmpp.NSRoster, Local: "query"}}))); err != nil {
		t.Fatal(err)
	}
	expect(t, alice, func(el *xmpp.Element) bool { return el.Get("id") == "r1" })
	for _, args := range [][]string{
		{"group", "add", "design", "-name", "Design"},
		{"group", "add-member", "design", "alice@localhost"},
		{"group", "add-member", "design", "bob@localhost"},
	} {
		if code, out := xmppctl(t, append([]string{"-data", data}, args...)...); code != 0 {
			t.Fatalf("xmppctl %v: exit %d: %s", args, code, out)
		}
	}
	push := expect(t, alice, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("type") == "set" })
	it := push.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item")
	if it == nil || it.Get("jid") != "bob@localhost" || it.Get("subscription") != "both" || it.Child(xmpp.NSRoster, "group").Text() != "Design" {
		t.Fatalf("push %s", push)
	}
	// Alice's roster is cached while she is online: a get shows what
	// xmppctl changed, with the version of the push.
	rosterGet := func(id string) *xmpp.Element {
		if err := alice.Send(ctx, stanza.IQ{ID: id, Type: stanza.GetIQ}.Wrap(xmlstream.Wrap(nil,
			xml.StartElement{Name: xml.Name{Space: xmpp.NSRoster, Local: "query"}}))); err != nil {
			t.Fatal(err)
		}
		return expect(t, alice, func(el *xmpp.Element) bool { return el.Get("id") == id }).Child(xmpp.NSRoster, "query")
	}
	ver := push.Child(xmpp.NSRoster, "query").Get("ver")
	if q := rosterGet("r2"); q == nil || q.Get("ver") != ver || q.Child(xmpp.NSRoster, "item") == nil {
		t.Fatalf("roster after the push of version %s: %v", ver, q)
	}
	if code, out := xmppctl(t, "-data", data, "group", "remove-member", "design", "bob@localhost"); code != 0 {
		t.Fatalf("xmppctl group remove-member: exit %d: %s", code, out)
	}
	push = expect(t, alice, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("type") == "set" })
	ver = push.Child(xmpp.NSRoster, "query").Get("ver")
	if q := rosterGet("r3"); q == nil || q.Get("ver") != ver || q.Child(xmpp.NSRoster, "item") != nil {
		t.Fatalf("roster after bob left (push of version %s): %v", ver, q)
	}
}

// xmlPresence is initial presence.
func xmlPresence() xml.TokenReader { return stanza.Presence{}.Wrap(nil) }

// await polls cond until it holds, for at most testenv.Timeout.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package admin

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// The nodes' sessions make one page in JID order, and a JID bound on two
// nodes is never split between two pages.
func TestPageSessions(t *testing.T) {
	s := func(jid, node string) SessionInfo { return SessionInfo{JID: jid, Node: node} }
	for _, c := range []struct {
		name  string
		all   []SessionInfo
		limit int
		want  []string // jid@node
		next  string
	}{
		{"all fit", []SessionInfo{s("b/1", "n2"), s("a/1", "n1")}, 5, []string{"a/1@n1", "b/1@n2"}, ""},
		{"cut", []SessionInfo{s("c/1", "n1"), s("a/1", "n2"), s("b/1", "n1")}, 2, []string{"a/1@n2", "b/1@n1"}, "b/1"},
		{"a JID on two nodes stays whole", []SessionInfo{s("a/1", "n1"), s("b/1", "n2"), s("b/1", "n1"), s("c/1", "n1")}, 2,
			[]string{"a/1@n1", "b/1@n1", "b/1@n2"}, "b/1"},
		{"whole at the end", []SessionInfo{s("a/1", "n2"), s("a/1", "n1")}, 1, []string{"a/1@n1", "a/1@n2"}, ""},
	} {
		p := pageSessions(c.all, c.limit)
		var got []string
		for _, it := range p.Items {
			got = append(got, it.JID+"@"+it.Node)
		}
		if !slices.Equal(got, c.want) || p.NextCursor != c.next {
			t.Errorf("%s: %v next %q, want %v next %q", c.name, got, p.NextCursor, c.want, c.next)
		}
	}
}

// What a node answers another's questions about its sessions, with a real
// server and client: the list, the count, an app event delivered, a kick;
// an unknown question is an error (the asking node counts the node as
// unanswered).
func TestClusterAnswer(t *testing.T) {
	c := &Cluster{}
	ts := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.Modules = append(modules.Default(modules.Options{Store: srv.Store}), c)
	})
	alice := ts.AddUser(t, "alice", "pw")
	cl := ts.Dial(t, alice, "pw", "phone")
	ctx := context.Background()
	ask := func(what string, args any) []byte {
		t.Helper()
		b, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.answer(ctx, what, b)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	var list []SessionInfo
	json.Unmarshal(ask(askSessions, sessionsQuery{Limit: 10}), &list)
	if len(list) != 1 || list[0].JID != "alice@localhost/phone" || list[0].Node != ts.Node() {
		t.Fatalf("sessions: %+v", list)
	}
	json.Unmarshal(ask(askSessions, sessionsQuery{Cursor: "alice@localhost/phone", Limit: 10}), &list)
	if len(list) != 0 {
		t.Fatalf("sessions after alice's: %+v", list)
	}
	var n NodeCount
	json.Unmarshal(ask(askCount, struct{}{}), &n)
	if n != (NodeCount{Node: ts.Node(), Sessions: 1}) {
		t.Fatalf("count: %+v", n)
	}
	msg := xmpp.NewElement(xmpp.NSClient, "message", "from", "localhost", "type", "headline", "id", "e1").
		Add(xmpp.NewElement(NSEvent, "event", "name", "ping", "id", "e1").Add(xmpp.Text("{}")))
	var got map[string]int
	json.Unmarshal(ask(askEvent, eventQuery{JIDs: []string{"alice@localhost", "bob@localhost"}, Message: string(msg.Bytes(xmpp.NSClient))}), &got)
	if len(got) != 1 || got["alice@localhost"] != 1 {
		t.Fatalf("event deliveries: %v", got)
	}
	cl.Expect(t, "the event", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(NSEvent, "event") != nil && el.Get("to") == "alice@localhost/phone"
	})
	var e ended
	json.Unmarshal(ask(askKick, kickQuery{JID: "alice@localhost/laptop"}), &e)
	if e.N != 0 {
		t.Fatalf("kicked %d sessions of a resource that is not there", e.N)
	}
	json.Unmarshal(ask(askKick, kickQuery{JID: "alice@localhost/phone"}), &e)
	if e.N != 1 {
		t.Fatalf("kicked %d sessions, want 1", e.N)
	}
	cl.ExpectStreamError(t, "policy-violation")
	if _, err := c.answer(ctx, "reboot", nil); err == nil {
		t.Fatal("an unknown question was answered")
	}
	// Without a bus, nobody else is asked.
	if answers, unanswered := c.ask(ctx, askCount, struct{}{}); answers != nil || unanswered != nil {
		t.Fatalf("a single node asked others: %v %v", answers, unanswered)
	}
}

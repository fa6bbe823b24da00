package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// cluster starts the named nodes on one fresh database and Redis prefix,
// each with the YAML extra, and creates the accounts users (password
// "pw"); the store is open for the test to look into.
func cluster(t *testing.T, extra string, users []string, names ...string) ([]*server, *postgres.Store) {
	t.Helper()
	dsn := pgtest.DSN(t)
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	// The first node migrates the database; the others start after it.
	nodes := []*server{startNode(t, names[0], dsn, addr, prefix, extra)}
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	addAccounts(t, st, "", users...)
	for _, n := range names[1:] {
		nodes = append(nodes, startNode(t, n, dsn, addr, prefix, extra))
	}
	return nodes, st
}

// dial signs user in on node s with a client that speaks stream
// management by hand, binding resource ("": the server picks) or, with
// previd, resuming after h stanzas.
func (s *server) dial(t *testing.T, user, resource, previd string, h uint32) *testenv.SMClient {
	t.Helper()
	return testenv.DialSMOn(t, testenv.StartTLSAt(t, s.c2s, s.clientTLS(t)), jid.MustParse(user), "pw", resource, previd, h)
}

// online sends available presence and waits for it to come back.
func online(t *testing.T, c *testenv.SMClient) {
	t.Helper()
	c.Send(`<presence/>`)
	c.Expect("own presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.JID.String()
	})
}

func hasBody(b string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		bd := el.Child(xmpp.NSClient, "body")
		return el.Local == "message" && bd != nil && bd.Text() == b
	}
}

// bodies returns the body of a message, or of the message a carbon
// forwards with its kind ("sent", "received"), or "" for anything else.
func bodies(el *xmpp.Element) (body, carbon string) {
	if el.Local != "message" {
		return "", ""
	}
	if b := el.Child(xmpp.NSClient, "body"); b != nil {
		return b.Text(), ""
	}
	for _, kind := range []string{"sent", "received"} {
		if c := el.Child("urn:xmpp:carbons:2", kind); c != nil {
			if fwd := c.Child("urn:xmpp:forward:0", "forwarded"); fwd != nil {
				if m := fwd.Child(xmpp.NSClient, "message"); m != nil {
					if b := m.Child(xmpp.NSClient, "body"); b != nil {
						return b.Text(), kind
					}
				}
			}
		}
	}
	return "", ""
}

// until returns what c gets until the message (not a carbon) with the
// body marker, as "body" or "kind:body" for carbons, in order.
func until(t *testing.T, c *testenv.SMClient, marker string) []string {
	t.Helper()
	var got []string
	for {
		el := c.Next()
		if el.Space == xmpp.NSStream && el.Local == "error" {
			t.Fatalf("%s: stream error: %s", c.JID, el)
		}
		b, kind := bodies(el)
		switch {
		case b == "":
		case kind == "" && b == marker:
			return got
		case kind == "":
			got = append(got, b)
		default:
			got = append(got, kind+":"+b)
		}
	}
}

func chatTo(c *testenv.SMClient, to, body string) {
	c.Send(fmt.Sprintf(`<message type="chat" to="%s"><body>%s</body></message>`, to, body))
}

// TestClusterResume: a client whose connection broke on node A resumes
// through node B (XEP-0198). The session ends on A at once; B answers
// <failed/> with A's count of what it handled; of what A had sent, the
// stanzas the client acknowledged in its <resume/> are dropped and the
// rest go to the account (here to offline storage), so that the session
// the client binds next on B gets each message exactly once. A second,
// late <resume/> of the same session gets its answer from A too.
func TestClusterResume(t *testing.T) {
	nodes, st := cluster(t, "", []string{"alice@localhost", "bob@localhost"}, "node-a", "node-b")
	a, b := nodes[0], nodes[1]

	alice := a.dial(t, "alice@localhost", "phone", "", 0)
	id := alice.Enable()
	online(t, alice) // the one stanza A handles from her
	bob := b.dial(t, "bob@localhost", "desk", "", 0)
	chatTo(bob, "alice@localhost/phone", "one")
	alice.Expect("one", hasBody("one"))
	acked := alice.H // she has "one" ...
	chatTo(bob, "alice@localhost/phone", "two")
	alice.Expect("two", hasBody("two")) // ... and "two", but will only say so for "one"
	alice.Cut()
	awaitLog(t, a, "session hibernated")

	again := b.dial(t, "alice@localhost", "", id, acked)
	ans := again.Answer
	if ans == nil || ans.Local != "failed" || ans.Child(xmpp.NSStanzas, "item-not-found") == nil {
		t.Fatalf("resume on another node: %v", ans)
	}
	if ans.Get("h") != "1" {
		t.Errorf("<failed/> says node A handled %q stanzas, want 1 (her presence)", ans.Get("h"))
	}
	awaitLog(t, a, "its client resumed on another node")
	// "two" waits offline: nobody else of alice's was online.
	msgs, err := st.OfflineMessages(context.Background(), "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), ">two<") {
		t.Fatalf("offline after the resumption elsewhere: %d messages, want only \"two\"", len(msgs))
	}

	// A late resumption of the ended session, on B again: A still knows
	// its count, and B does not wait for the resumption timeout.
	late := b.dial(t, "alice@localhost", "", id, acked)
	if ans := late.Answer; ans == nil || ans.Local != "failed" || ans.Get("h") != "1" {
		t.Fatalf("late resume: %v", ans)
	}

	// The client binds on B: "two" comes with its initial presence, once;
	// "three" after it shows nothing else came.
	fresh := b.dial(t, "alice@localhost", "phone", "", 0)
	fresh.Send(`<presence/>`)
	if got := until(t, fresh, "two"); len(got) != 0 {
		t.Fatalf("the new session got %q before \"two\"", got)
	}
	chatTo(bob, "alice@localhost/phone", "three")
	if got := until(t, fresh, "three"); len(got) != 0 {
		t.Fatalf("the new session got %q between \"two\" and \"three\"", got)
	}
}

// TestClusterResourceConflict: binding a resource bound on another node
// replaces that session, which is told <conflict/> (RFC 6120 §7.7.2.2),
// and stanzas to the full JID reach the new one.
func TestClusterResourceConflict(t *testing.T) {
	nodes, _ := cluster(t, "", []string{"alice@localhost", "bob@localhost"}, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	old := a.dial(t, "alice@localhost", "desk", "", 0)
	online(t, old)
	nu := b.dial(t, "alice@localhost", "desk", "", 0)
	if nu.Answer != nil || nu.JID.String() != "alice@localhost/desk" {
		t.Fatalf("bind on node B: %v %v", nu.JID, nu.Answer)
	}
	for {
		el := old.Next()
		if el.Space == xmpp.NSStream && el.Local == "error" {
			if el.Child(xmpp.NSStreams, "conflict") == nil {
				t.Fatalf("the replaced session got %s, want <conflict/>", el)
			}
			break
		}
	}
	online(t, nu)
	bob := a.dial(t, "bob@localhost", "", "", 0)
	chatTo(bob, "alice@localhost/desk", "to the new one")
	nu.Expect("the message", hasBody("to the new one"))
}

// TestClusterSessionLimit: limits.max_sessions_per_account counts the
// account's sessions on every node; binding a resource it has elsewhere
// again replaces it and is not refused.
func TestClusterSessionLimit(t *testing.T) {
	nodes, _ := cluster(t, "limits:\n  max_sessions_per_account: 2\n", []string{"alice@localhost"}, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	// online: each session is in the registry once its presence is back.
	online(t, a.dial(t, "alice@localhost", "one", "", 0))
	online(t, b.dial(t, "alice@localhost", "two", "", 0))
	for _, n := range []*server{a, b} {
		c := n.dial(t, "alice@localhost", "three", "", 0)
		if c.Answer == nil || c.Answer.Child(xmpp.NSClient, "error").Child(xmpp.NSStanzas, "resource-constraint") == nil {
			t.Fatalf("a third session: %v %v, want <resource-constraint/>", c.JID, c.Answer)
		}
	}
	if c := a.dial(t, "alice@localhost", "two", "", 0); c.Answer != nil {
		t.Fatalf("binding again a resource held on the other node: %s", c.Answer)
	}
}

// TestClusterCarbons: Message Carbons (XEP-0280) across nodes. alice has a
// carbons-enabled client on node A (desk) and one on node B (phone); bob
// is on node C. A message to one of alice's full JIDs is copied to the
// other as <received/>; one alice sends from either is copied to the
// other as <sent/>; a message to her bare JID that both get (same
// priority) is copied to neither.
func TestClusterCarbons(t *testing.T) {
	nodes, _ := cluster(t, "", []string{"alice@localhost", "bob@localhost"}, "node-a", "node-b", "node-c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	desk := a.dial(t, "alice@localhost", "desk", "", 0)
	phone := b.dial(t, "alice@localhost", "phone", "", 0)
	for _, cl := range []*testenv.SMClient{desk, phone} {
		cl.Send(`<iq type="set" id="carbons"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
		cl.Expect("carbons enabled", func(el *xmpp.Element) bool {
			return el.Local == "iq" && el.Get("id") == "carbons" && el.Get("type") == "result"
		})
		online(t, cl)
	}
	// Each sees the other's presence: both are in the registry, available.
	desk.Expect("phone's presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == phone.JID.String()
	})
	bob := c.dial(t, "bob@localhost", "", "", 0)
	online(t, bob)

	chatTo(bob, "alice@localhost/desk", "to the desk")
	chatTo(bob, "alice@localhost/phone", "to the phone")
	chatTo(bob, "alice@localhost", "to both")
	marker(bob, "alice@localhost/desk")
	marker(bob, "alice@localhost/phone")
	if got, want := until(t, desk, "marker"), []string{"to the desk", "received:to the phone", "to both"}; !equal(got, want) {
		t.Errorf("desk got %q, want %q", got, want)
	}
	if got, want := until(t, phone, "marker"), []string{"received:to the desk", "to the phone", "to both"}; !equal(got, want) {
		t.Errorf("phone got %q, want %q", got, want)
	}

	// bob gets both before he sends the markers: the copies went out
	// before the messages themselves, so they are ahead of the markers.
	chatTo(phone, bob.JID.String(), "from the phone")
	bob.Expect("from the phone", hasBody("from the phone"))
	chatTo(desk, bob.JID.String(), "from the desk")
	bob.Expect("from the desk", hasBody("from the desk"))
	marker(bob, "alice@localhost/desk")
	marker(bob, "alice@localhost/phone")
	if got, want := until(t, desk, "marker"), []string{"sent:from the phone"}; !equal(got, want) {
		t.Errorf("desk got %q, want %q", got, want)
	}
	if got, want := until(t, phone, "marker"), []string{"sent:from the desk"}; !equal(got, want) {
		t.Errorf("phone got %q, want %q", got, want)
	}
}

// marker sends a message with the body "marker" that is not copied
// (<private/>, XEP-0280 §9): it ends what until collects.
func marker(c *testenv.SMClient, to string) {
	c.Send(`<message type="chat" to="` + to + `"><body>marker</body><private xmlns="urn:xmpp:carbons:2"/></message>`)
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

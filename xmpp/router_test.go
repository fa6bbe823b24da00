package xmpp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

func errorCondition(el *xmpp.Element) string {
	e := el.Child("", "error")
	if el.Get("type") != "error" || e == nil || len(e.Elements()) == 0 {
		return ""
	}
	return e.Elements()[0].Local
}

func byID(id string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return el.Get("id") == id }
}

func TestRoutingErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "home")
		s.AddUser(t, "offline", "pw")
		for _, tc := range []struct {
			name, send, want string
		}{
			{"message to unknown user", `<message id="m1" type="chat" to="nobody@localhost"><body>x</body></message>`, "service-unavailable"},
			{"iq to unknown user", `<iq id="m1" type="get" to="nobody@localhost"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`, "service-unavailable"},
			{"iq to offline full JID", `<iq id="m1" type="get" to="offline@localhost/x"><ping xmlns="urn:xmpp:ping"/></iq>`, "service-unavailable"},
			{"groupchat to a user", `<message id="m1" type="groupchat" to="alice@localhost"><body>x</body></message>`, "service-unavailable"},
			{"remote domain", `<message id="m1" type="chat" to="bob@example.net"><body>x</body></message>`, "remote-server-not-found"},
			{"malformed JID", `<message id="m1" type="chat" to="a@b@c@@"><body>x</body></message>`, "jid-malformed"},
			{"a domain with an empty label", `<message id="m1" type="chat" to="bob@.."><body>x</body></message>`, "jid-malformed"},
			{"unknown IQ to server", `<iq id="m1" type="get" to="localhost"><query xmlns="urn:example:nothing"/></iq>`, "service-unavailable"},
			{"IQ with two children", `<iq id="m1" type="get" to="localhost"><a xmlns="x"/><b xmlns="y"/></iq>`, "bad-request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.SendRaw(t, tc.send)
				el := a.Expect(t, "error reply", byID("m1"))
				if got := errorCondition(el); got != tc.want {
					t.Fatalf("got %q, want %q: %s", got, tc.want, el)
				}
				if el.Get("to") != a.JID.String() {
					t.Fatalf("error addressed to %q", el.Get("to"))
				}
			})
		}
		// An error in answer to an error would loop: nothing comes back.
		a.SendRaw(t, `<message type="error" to="nobody@localhost"><body>x</body></message><iq type="get" id="sentinel" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
		if el := a.Expect(t, "next reply", func(*xmpp.Element) bool { return true }); el.Get("id") != "sentinel" {
			t.Fatalf("bounced an error: %s", el)
		}
	})
}

func TestBareJIDGoesToHighestPriority(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	bob := s.AddUser(t, "bob", "pw")
	hi := s.Dial(t, bob, "pw", "desk")
	lo := s.Dial(t, bob, "pw", "phone")
	neg := s.Dial(t, bob, "pw", "bot")
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "")
	for c, prio := range map[*testenv.Client]string{hi: "10", lo: "1", neg: "-1"} {
		c.SendRaw(t, `<presence><priority>`+prio+`</priority></presence><iq type="get" id="sync"><ping xmlns="urn:xmpp:ping"/></iq>`)
		c.Expect(t, "sync", byID("sync"))
	}
	alice.SendRaw(t, `<message type="chat" to="bob@localhost"><body>one</body></message>`+
		`<message type="headline" to="bob@localhost"><body>all</body></message>`)
	body := func(want string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool {
			b := el.Child("", "body")
			return el.Local == "message" && b != nil && b.Text() == want
		}
	}
	// desk gets the chat then the headline; phone only the headline (the
	// chat went to the highest priority); bot (negative) gets neither.
	hi.Expect(t, "chat", body("one"))
	hi.Expect(t, "headline", body("all"))
	firstBody := func(c *testenv.Client) string {
		t.Helper()
		return c.Expect(t, "a message", func(el *xmpp.Element) bool { return el.Local == "message" }).Child("", "body").Text()
	}
	if got := firstBody(lo); got != "all" {
		t.Fatalf("phone got %q first, want the headline", got)
	}
	// Full JIDs reach even a negative-priority resource.
	alice.SendRaw(t, `<message type="chat" to="bob@localhost/bot"><body>direct</body></message>`)
	if got := firstBody(neg); got != "direct" {
		t.Fatalf("bot got %q first", got)
	}
}

func TestResourceConflictReplacesOldSession(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	bob := s.AddUser(t, "bob", "pw")
	old := s.Dial(t, bob, "pw", "desk")
	fresh := s.Dial(t, bob, "pw", "desk")
	old.ExpectStreamError(t, "conflict")
	if !fresh.JID.Equal(old.JID) {
		t.Fatalf("resources differ: %s %s", fresh.JID, old.JID)
	}
	testenv.Exchange(t, s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", ""), fresh)
}

func TestFromIsStamped(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	b := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "r")
	// No from, or the sender's bare JID: the server writes the full JID.
	a.SendRaw(t, `<message to="bob@localhost/r" id="1"><body>1</body></message><message from="alice@localhost" to="bob@localhost/r" id="2"><body>2</body></message>`)
	for _, id := range []string{"1", "2"} {
		if el := b.Expect(t, "message "+id, byID(id)); el.Get("from") != "alice@localhost/r" {
			t.Fatalf("from = %q", el.Get("from"))
		}
	}
}

func TestCoreFeatures(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	ask := func(id, to, payload string) *xmpp.Element {
		t.Helper()
		attr := ""
		if to != "" {
			attr = ` to="` + to + `"`
		}
		a.SendRaw(t, `<iq type="get" id="`+id+`"`+attr+`>`+payload+`</iq>`)
		el := a.Expect(t, id, byID(id))
		if el.Get("type") != "result" {
			t.Fatalf("%s: %s", id, el)
		}
		return el
	}
	info := ask("info", "localhost", `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
	q := info.Child("http://jabber.org/protocol/disco#info", "query")
	var features []string
	for _, f := range q.Elements() {
		if f.Local == "feature" {
			features = append(features, f.Get("var"))
		}
	}
	got := strings.Join(features, " ")
	for _, want := range []string{"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time", "jabber:iq:last", "http://jabber.org/protocol/disco#info"} {
		if !strings.Contains(got, want) {
			t.Errorf("server features %q lack %s", got, want)
		}
	}
	if id := q.Child("", "identity"); id == nil || id.Get("category") != "server" || id.Get("type") != "im" {
		t.Errorf("server identity: %s", q)
	}
	acct := ask("acct", "alice@localhost", `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
	if id := acct.Child("", "query").Child("", "identity"); id == nil || id.Get("category") != "account" {
		t.Errorf("account identity: %s", acct)
	}
	ask("ping", "localhost", `<ping xmlns="urn:xmpp:ping"/>`)
	ask("ping-self", "", `<ping xmlns="urn:xmpp:ping"/>`)
	v := ask("version", "localhost", `<query xmlns="jabber:iq:version"/>`)
	if n := v.Child("", "query").Child("", "name"); n == nil || n.Text() != "xmppd" {
		t.Errorf("version: %s", v)
	}
	tm := ask("time", "localhost", `<time xmlns="urn:xmpp:time"/>`)
	utc := tm.Child("", "time").Child("", "utc").Text()
	if ts, err := time.Parse(time.RFC3339, utc); err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("time: %s (%v)", tm, err)
	}
	last := ask("last", "localhost", `<query xmlns="jabber:iq:last"/>`)
	if last.Child("", "query").Get("seconds") == "" {
		t.Errorf("last: %s", last)
	}
	a.SendRaw(t, `<iq type="set" id="session"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>`)
	if el := a.Expect(t, "session", byID("session")); el.Get("type") != "result" {
		t.Fatalf("legacy session: %s", el)
	}
	// An IQ get to another user's full JID reaches that client.
	b := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "r")
	a.SendRaw(t, `<iq type="get" id="p2p" to="bob@localhost/r"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if el := b.Expect(t, "forwarded ping", byID("p2p")); el.Get("from") != a.JID.String() {
		t.Fatalf("forwarded: %s", el)
	}
}

// The server pings a silent client; one that answers stays, one that does
// not is closed with connection-timeout.
func TestKeepalivePing(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.PingInterval = 200 * time.Millisecond
		s.PingTimeout = 300 * time.Millisecond
	})
	good := s.Dial(t, s.AddUser(t, "good", "pw"), "pw", "r")
	dead := s.Dial(t, s.AddUser(t, "dead", "pw"), "pw", "r")
	ping := good.Expect(t, "server ping", func(el *xmpp.Element) bool { return el.Child("urn:xmpp:ping", "ping") != nil })
	if ping.Get("from") != "localhost" || ping.Get("type") != "get" {
		t.Fatalf("ping: %s", ping)
	}
	good.SendRaw(t, `<iq type="result" id="`+ping.Get("id")+`" to="localhost"/>`)
	dead.ExpectStreamError(t, "connection-timeout")
	// The good client answers the next ping too and is still there.
	for i := 0; i < 2; i++ {
		p := good.Expect(t, "next ping", func(el *xmpp.Element) bool { return el.Child("urn:xmpp:ping", "ping") != nil })
		good.SendRaw(t, `<iq type="result" id="`+p.Get("id")+`" to="localhost"/>`)
	}
	if s.SessionOf(good.JID) == nil {
		t.Fatal("a client that answers pings was dropped")
	}
}

// Answers to IQs without 'to' come from the account they were implicitly
// addressed to (RFC 6120 §10.3.3), errors as much as results: clients match
// an answer by its sender, and one from the domain looks like someone else's.
func TestRepliesToAccountComeFromBareJID(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "home")
	bare := a.JID.Bare().String()
	for _, tc := range []struct{ name, send, typ string }{
		{"unknown payload", `<iq id="r1" type="get"><query xmlns="urn:example:nothing"/></iq>`, "error"},
		{"two children", `<iq id="r1" type="get"><a xmlns="x"/><b xmlns="y"/></iq>`, "error"},
		{"bad type", `<iq id="r1" type="bogus"><ping xmlns="urn:xmpp:ping"/></iq>`, "error"},
		{"ping", `<iq id="r1" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`, "result"},
		{"roster", `<iq id="r1" type="get"><query xmlns="jabber:iq:roster"/></iq>`, "result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.SendRaw(t, tc.send)
			el := a.Expect(t, "reply", byID("r1"))
			if el.Get("type") != tc.typ {
				t.Fatalf("got %s, want type %s", el, tc.typ)
			}
			if from := el.Get("from"); from != "" && from != bare {
				t.Fatalf("reply from %q, want %q or none: %s", from, bare, el)
			}
		})
	}
}

package xmpp_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// smConnect signs user in with stream management on offer, binding or, with
// previd, resuming (the answer is the <resumed/> or <failed/>).
func smConnect(t *testing.T, s *testenv.Server, user jid.JID, password, previd string, h uint32) (*testenv.SMClient, *xmpp.Element) {
	t.Helper()
	c := s.DialSM(t, user, password, "", previd, h)
	return c, c.Answer
}

func isNS(space, local string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return el.Space == space && el.Local == local }
}

func body(b string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		bd := el.Child(xmpp.NSClient, "body")
		return el.Local == "message" && bd != nil && bd.Text() == b
	}
}

// TestStreamManagementCounts: <r/> and <a/> both ways, with the counts of
// XEP-0198 §4, and an h beyond what was sent ends the stream.
func TestStreamManagementCounts(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "pw")
	c, _ := smConnect(t, s, alice, "pw", "", 0)
	c.Enable()
	// Three stanzas from the client, then a request: h is 3.
	for i := 0; i < 3; i++ {
		c.Send(fmt.Sprintf(`<iq type="get" id="p%d" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`, i))
	}
	c.Send(`<r xmlns="urn:xmpp:sm:3"/>`)
	// The server asks for acknowledgements of what it sends, and answers
	// the client's request: h is 3.
	var a *xmpp.Element
	asked := false
	for a == nil || !asked {
		el := c.Next()
		switch {
		case isNS(xmpp.NSSM, "a")(el):
			a = el
		case isNS(xmpp.NSSM, "r")(el):
			asked = true
		}
	}
	if a.Get("h") != "3" {
		t.Fatalf("server handled %s stanzas, want 3", a.Get("h"))
	}
	c.Send(fmt.Sprintf(`<a xmlns="urn:xmpp:sm:3" h="%d"/>`, c.H))
	c.Send(`<a xmlns="urn:xmpp:sm:3" h="99"/>`)
	c.Expect("stream error", func(el *xmpp.Element) bool {
		if el.Space == xmpp.NSStream && el.Local == "error" {
			if el.Child(xmpp.NSStreams, "undefined-condition") == nil || !strings.Contains(el.String(), "handled-count-too-high") {
				t.Fatalf("h too high: %s", el)
			}
			return true
		}
		return false
	})
	s.Others(t)
}

// TestStreamManagementResume: a client cut off without a close is sent
// messages meanwhile; it resumes on a new connection and gets every one
// exactly once, the one it received but never acknowledged among them.
func TestStreamManagementResume(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "pw")
		bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "desk")
		c, _ := smConnect(t, s, alice, "pw", "", 0)
		id := c.Enable()
		c.Send(`<presence/>`)
		c.Expect("own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })
		// A message written to the client, which it reads but never
		// acknowledges before its connection dies.
		bob.SendRaw(t, `<message type="chat" to="`+c.JID.String()+`"><body>in flight</body></message>`)
		c.Expect("in flight", body("in flight"))
		acked := c.H - 1 // the client acknowledges all but the last
		c.Cut()
		// Sent while the session hibernates.
		for i := 0; i < 20; i++ {
			bob.SendRaw(t, fmt.Sprintf(`<message type="chat" to="%s"><body>m%d</body></message>`, c.JID, i))
		}
		bob.SendRaw(t, `<iq type="get" id="sync" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
		bob.Expect(t, "sync", byID("sync"))
		r, resumed := smConnect(t, s, alice, "pw", id, acked)
		if resumed.Get("previd") != id {
			t.Fatalf("resumed: %s", resumed)
		}
		if n := s.Hibernating(); n != 0 {
			t.Errorf("Hibernating() = %d after the resumption", n)
		}
		got := map[string]int{}
		for len(got) < 21 {
			el := r.Next()
			if b := el.Child(xmpp.NSClient, "body"); el.Local == "message" && b != nil {
				got[b.Text()]++
			}
		}
		want := []string{"in flight"}
		for i := 0; i < 20; i++ {
			want = append(want, fmt.Sprintf("m%d", i))
		}
		for _, w := range want {
			if got[w] != 1 {
				t.Fatalf("%q arrived %d times after the resumption: %v", w, got[w], got)
			}
		}
		// The session goes on: both ways, and nothing came twice.
		bob.SendRaw(t, `<message type="chat" to="`+c.JID.String()+`"><body>after</body></message>`)
		r.Expect("after", body("after"))
		r.Send(`<message type="chat" to="` + bob.JID.String() + `"><body>back</body></message>`)
		bob.Expect(t, "back", func(el *xmpp.Element) bool { return body("back")(el) })
		s.Others(t)
	})
}

// TestStreamManagementExpires: a session nobody resumes in time ends; what
// its client never acknowledged is in offline storage and arrives at the
// next login, an IQ it never answered comes back to its sender as an error,
// a late resumption fails with the count of what the server handled, and
// the account stayed available meanwhile.
func TestStreamManagementExpires(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend, func(s *xmpp.Server) { s.SMResumeTimeout = time.Second })
		alice := s.AddUser(t, "alice", "pw")
		bobJID := s.AddUser(t, "bob", "pw")
		bob := s.Dial(t, bobJID, "pw", "desk")
		c, _ := smConnect(t, s, alice, "pw", "", 0)
		id := c.Enable()
		c.Send(`<presence/>`)
		c.Expect("own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })
		c.Send(`<iq type="get" id="s1" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
		c.Expect("ping", byID("s1"))
		handled := "2" // the presence and the ping
		// Closed once: a later session of the same full JID (the next
		// login) ends too.
		ended := make(chan struct{})
		hibernated := make(chan struct{})
		endedOnce := sync.OnceFunc(func() { close(ended) })
		hibernatedOnce := sync.OnceFunc(func() { close(hibernated) })
		s.HookSession(xmpp.SessionHibernated, 0, func(_ context.Context, sess *xmpp.Session) {
			if sess.JID().Equal(c.JID) {
				hibernatedOnce()
			}
		})
		s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
			if sess.JID().Equal(c.JID) {
				endedOnce()
			}
		})
		c.Cut()
		<-hibernated
		if sess := s.SessionOf(c.JID); sess == nil {
			t.Fatal("a hibernated session is not routable")
		} else if ok, _ := sess.Available(); !ok {
			t.Fatal("a hibernated session is not available")
		}
		if n := s.Hibernating(); n != 1 {
			t.Errorf("Hibernating() = %d with one session hibernated", n)
		}
		for i := 0; i < 5; i++ {
			bob.SendRaw(t, fmt.Sprintf(`<message type="chat" to="%s"><body>kept%d</body></message>`, c.JID, i))
		}
		bob.SendRaw(t, `<iq type="get" id="q1" to="`+c.JID.String()+`"><query xmlns="jabber:iq:version"/></iq>`)
		select {
		case <-ended:
		case <-time.After(testenv.Timeout):
			t.Fatal("the hibernated session did not end after its timeout")
		}
		if n := s.Hibernating(); n != 0 {
			t.Errorf("Hibernating() = %d after the hibernated session ended", n)
		}
		if el := bob.Expect(t, "error for the unanswered IQ", byID("q1")); el.Get("type") != "error" {
			t.Fatalf("unanswered IQ: %s", el)
		}
		_, failed := smConnect(t, s, alice, "pw", id, 0)
		if failed.Local != "failed" || failed.Child(xmpp.NSStanzas, "item-not-found") == nil || failed.Get("h") != handled {
			t.Fatalf("late resumption: %s, want failed with item-not-found and h=%s", failed, handled)
		}
		// At the next login, the five messages, in order, once each.
		again := s.Dial(t, alice, "pw", "phone")
		again.SendRaw(t, `<presence/>`)
		for i := 0; i < 5; i++ {
			again.Expect(t, "stored message", func(el *xmpp.Element) bool {
				b := el.Child(xmpp.NSClient, "body")
				return el.Local == "message" && b != nil && strings.HasPrefix(b.Text(), "kept") &&
					b.Text() == "kept"+strconv.Itoa(i)
			})
		}
	})
}

// TestStreamManagementTakeover: a resumption that arrives while the old
// connection still looks alive takes the session from it.
func TestStreamManagementTakeover(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "pw")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "desk")
	old, _ := smConnect(t, s, alice, "pw", "", 0)
	id := old.Enable()
	r, resumed := smConnect(t, s, alice, "pw", id, 0)
	if resumed.Local != "resumed" {
		t.Fatalf("takeover: %s", resumed)
	}
	select {
	case <-old.Done:
	case <-time.After(testenv.Timeout):
		t.Fatal("the old connection was not closed")
	}
	bob.SendRaw(t, `<message type="chat" to="`+old.JID.String()+`"><body>to the new one</body></message>`)
	r.Expect("message", body("to the new one"))
}

// TestStreamManagementRefusals: resuming a session that does not exist, or
// another account's, fails and the client may bind instead; enabling twice
// fails; with BOSH, stream management is not offered.
func TestStreamManagementRefusals(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "pw")
	mallory := s.AddUser(t, "mallory", "pw")
	c, _ := smConnect(t, s, alice, "pw", "", 0)
	id := c.Enable()
	c.Send(`<enable xmlns="urn:xmpp:sm:3" resume="true"/>`)
	if el := c.Expect("failed", isNS(xmpp.NSSM, "failed")); el.Child(xmpp.NSStanzas, "unexpected-request") == nil {
		t.Fatalf("second enable: %s", el)
	}
	for _, tc := range []struct {
		who    jid.JID
		previd string
	}{{alice, "no-such-session"}, {mallory, id}} {
		_, failed := smConnect(t, s, tc.who, "pw", tc.previd, 0)
		if failed.Local != "failed" || failed.Child(xmpp.NSStanzas, "item-not-found") == nil {
			t.Fatalf("%s resuming %s: %s", tc.who, tc.previd, failed)
		}
	}
	// alice's session was not taken over by mallory.
	c.Send(`<iq type="get" id="still" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	c.Expect("still served", byID("still"))
	// BOSH has acknowledgements of its own (XEP-0124 §9): no <sm/>.
	b := s.NewBOSH()
	b.Create(t, 1, 1, "")
	b.Until(t, "stream features", func(el *xmpp.Element) bool { return el.Local == "features" })
	b.Post(t, "", testenv.PlainAuth("alice", "pw"))
	b.Until(t, "SASL success", func(el *xmpp.Element) bool { return el.Local == "success" })
	b.Post(t, `xmpp:restart="true" to="localhost"`, "")
	f := b.Until(t, "stream features after restart", func(el *xmpp.Element) bool { return el.Local == "features" })
	if f.Child(xmpp.NSSM, "sm") != nil {
		t.Fatalf("stream management offered over BOSH: %s", f)
	}
	s.Others(t)
}

// TestStreamManagementUnackedLimit: a client that never acknowledges is cut
// off once it leaves too many stanzas unacknowledged.
func TestStreamManagementUnackedLimit(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.SMMaxUnacked = 10 })
	alice := s.AddUser(t, "alice", "pw")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "desk")
	c, _ := smConnect(t, s, alice, "pw", "", 0)
	c.Enable()
	for i := 0; i < 12; i++ {
		bob.SendRaw(t, fmt.Sprintf(`<message type="headline" to="%s"><body>n%d</body></message>`, c.JID, i))
	}
	c.Expect("stream error", func(el *xmpp.Element) bool {
		if el.Space == xmpp.NSStream && el.Local == "error" {
			if el.Child(xmpp.NSStreams, "resource-constraint") == nil {
				t.Fatalf("unacked limit: %s", el)
			}
			return true
		}
		return false
	})
	s.Others(t)
}

// A resumed session is the same session: with one session allowed per
// account, a client that resumes is not refused as a second one, and a
// hibernated session still counts, so another client cannot take its place.
func TestStreamManagementCountsOnce(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxSessionsPerAccount = 1 })
	alice := s.AddUser(t, "alice", "pw")
	c, _ := smConnect(t, s, alice, "pw", "", 0)
	id := c.Enable()
	// Buffered and never blocking: the resumed session hibernates again
	// when the test's clean-up cuts its connection.
	hibernated := make(chan struct{}, 1)
	s.HookSession(xmpp.SessionHibernated, 0, func(_ context.Context, sess *xmpp.Session) {
		select {
		case hibernated <- struct{}{}:
		default:
		}
	})
	c.Cut()
	<-hibernated
	if _, err := s.DialFrom(t, "127.0.0.1", alice, "pw", "other"); err == nil || !strings.Contains(err.Error(), "resource-constraint") {
		t.Fatalf("a second session beside a hibernated one: %v", err)
	}
	r, resumed := smConnect(t, s, alice, "pw", id, 0)
	if resumed.Local != "resumed" {
		t.Fatalf("resumption with one session allowed: %s", resumed)
	}
	r.Send(`<iq type="get" id="p" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	r.Expect("ping", byID("p"))
}

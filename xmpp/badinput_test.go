package xmpp_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// Bad input before authentication, on a raw TCP connection: each gets its
// exact stream error, and everybody else keeps being served.
func TestBadInputBeforeAuth(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxStanzaSize = 4096 })
	for _, tc := range []struct {
		name, send, want string
	}{
		{"malformed", testenv.Header + `<<>`, "not-well-formed"},
		{"malformed header", `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="localhost" version="1.0"<`, "not-well-formed"},
		{"comment", testenv.Header + `<!-- hello -->`, "restricted-xml"},
		{"processing instruction", testenv.Header + `<?php echo 1; ?>`, "restricted-xml"},
		{"DTD", `<?xml version="1.0"?><!DOCTYPE stream [<!ENTITY x "y">]>` + testenv.Header, "restricted-xml"},
		{"entity", testenv.Header + `<message to="a@localhost"><body>&x;</body></message>`, "restricted-xml"},
		{"message before auth", testenv.Header + `<message to="a@localhost"><body>hi</body></message>`, "not-authorized"},
		{"iq before auth", testenv.Header + `<iq type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>`, "not-authorized"},
		{"presence before auth", testenv.Header + `<presence/>`, "not-authorized"},
		{"oversized", testenv.Header + `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls" pad="` + strings.Repeat("x", 8000) + `"/>`, "policy-violation"},
		{"unknown host", strings.Replace(testenv.Header, `to="localhost"`, `to="example.org"`, 1), "host-unknown"},
		{"wrong namespace", strings.Replace(testenv.Header, `xmlns="jabber:client"`, `xmlns="jabber:other"`, 1), "invalid-namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.DialRaw(t, "127.0.0.1")
			io.WriteString(r, tc.send)
			out := r.ReadUntilClosed(t)
			if got := testenv.StreamErrorCondition(out); got != tc.want {
				t.Fatalf("stream error %q, want %q; server sent %q", got, tc.want, out)
			}
			if !strings.HasSuffix(out, "</stream:stream>") {
				t.Errorf("stream not closed: %q", out)
			}
		})
	}
	s.Others(t)
}

// Bad input from an authenticated client ends its stream alone.
func TestBadInputAfterAuth(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxStanzaSize = 4096 })
	mallory := s.AddUser(t, "mallory", "pw")
	for _, tc := range []struct {
		name, send, want string
	}{
		{"malformed", `<message><body>oops</message>`, "not-well-formed"},
		{"comment", `<message><!-- c --></message>`, "restricted-xml"},
		{"processing instruction", `<?xml-stylesheet href="x"?>`, "restricted-xml"},
		{"entity", `<message><body>&lol;</body></message>`, "restricted-xml"},
		{"oversized", `<message to="x@localhost"><body>` + strings.Repeat("y", 5000) + `</body></message>`, "policy-violation"},
		{"spoofed from", `<message from="bob@localhost/x" to="mallory@localhost"><body>hi</body></message>`, "invalid-from"},
		{"not a stanza", `<foo xmlns="urn:example"/>`, "unsupported-stanza-type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Dial(t, mallory, "pw", "")
			c.SendRaw(t, tc.send)
			c.ExpectStreamError(t, tc.want)
		})
	}
	s.Others(t)
}

func TestStanzaJustUnderLimitPasses(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxStanzaSize = 4096 })
	a := s.Dial(t, s.AddUser(t, "a", "pw"), "pw", "r")
	body := strings.Repeat("z", 3800)
	a.SendRaw(t, `<message to="`+a.JID.String()+`"><body>`+body+`</body></message>`)
	a.Expect(t, "own big message", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return b != nil && b.Text() == body
	})
}

func TestWrongPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend, func(s *xmpp.Server) {
			s.AuthFailureDelay = 100 * time.Millisecond
			s.MaxAuthFailures = 3
		})
		alice := s.AddUser(t, "alice", "right")
		// Each failure is answered later than the one before.
		for i := 0; i < 3; i++ {
			start := time.Now()
			_, err := s.DialFrom(t, "127.0.0.2", alice, "wrong", "")
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "<not-authorized") {
				t.Fatalf("attempt %d: want SASL not-authorized, got %v", i+1, err)
			}
			if min := 100 * time.Millisecond << i; took < min {
				t.Fatalf("failure %d answered after %v, want at least %v", i+1, took, min)
			}
		}
		// SCRAM, through a second implementation, fails too.
		for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256} {
			if err := s.DialMech(alice, "wrong", m); err == nil {
				t.Fatalf("%s login with a wrong password succeeded", m.Name)
			}
		}
		// 127.0.0.2 has used up its failures: even the right password is
		// refused, with a policy-violation before authentication starts.
		r := s.DialRaw(t, "127.0.0.2")
		io.WriteString(r, testenv.Header)
		if got := testenv.StreamErrorCondition(r.ReadUntilClosed(t)); got != "policy-violation" {
			t.Fatalf("blocked address got %q, want policy-violation", got)
		}
		if _, err := s.DialFrom(t, "127.0.0.2", alice, "right", ""); err == nil {
			t.Fatal("blocked address could still log in")
		}
		// Everybody else, the same account included, still gets in.
		s.Dial(t, alice, "right", "")
		s.Others(t)
	})
}

func TestNoAuthBeforeTLS(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	r := s.DialRaw(t, "127.0.0.1")
	io.WriteString(r, testenv.Header)
	r.SetReadDeadline(time.Now().Add(testenv.Timeout))
	var out []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(out), "</stream:features>") {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("reading features: %v (%q)", err, out)
		}
		out = append(out, buf[:n]...)
	}
	if strings.Contains(string(out), "mechanisms") || !strings.Contains(string(out), "<required") {
		t.Fatalf("want only a required STARTTLS before TLS, got %q", out)
	}
	// Trying anyway is a policy violation.
	io.WriteString(r, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AGEAYg==</auth>`)
	if got := testenv.StreamErrorCondition(r.ReadUntilClosed(t)); got != "policy-violation" {
		t.Fatalf("auth before TLS: got %q", got)
	}
	s.Others(t)
}

func TestNegotiationTimeout(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.NegotiationTimeout = 300 * time.Millisecond })
	r := s.DialRaw(t, "127.0.0.1")
	io.WriteString(r, testenv.Header)
	out := r.ReadUntilClosed(t)
	if got := testenv.StreamErrorCondition(out); got != "connection-timeout" {
		t.Fatalf("got %q, want connection-timeout: %q", got, out)
	}
	s.Others(t)
}

// A client that sends faster than the read rate is slowed down to it, and
// nobody else notices.
func TestReadRateLimit(t *testing.T) {
	const rate = 50000
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.ReadRate, s.ReadBurst = rate, rate
	})
	fast := s.Dial(t, s.AddUser(t, "fast", "pw"), "pw", "")
	chunk := `<message to="nobody@localhost" type="headline"><body>` + strings.Repeat("f", 900) + `</body></message>`
	var b strings.Builder
	for b.Len() < 3*rate {
		b.WriteString(chunk)
	}
	sent := b.Len()
	start := time.Now()
	go fast.SendRaw(t, b.String()+`<iq type="get" id="after-flood"><ping xmlns="urn:xmpp:ping"/></iq>`)
	s.Others(t)
	fast.Expect(t, "ping answer after the flood", func(el *xmpp.Element) bool { return el.Get("id") == "after-flood" })
	// The bucket starts full (one burst); the rest cannot have been read
	// faster than the rate, less the last read, whose debt is never slept.
	if min := time.Duration(float64(sent-rate-16384) / rate * float64(time.Second)); time.Since(start) < min {
		t.Fatalf("%d bytes read in %v, faster than %d B/s allows (%v)", sent, time.Since(start), rate, min)
	}
}

func TestSlowReaderIsDisconnectedAlone(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.QueueSize = 8 })
	slow := s.Dial(t, s.AddUser(t, "slow", "pw"), "pw", "r")
	sender := s.Dial(t, s.AddUser(t, "sender", "pw"), "pw", "r")
	ended := make(chan struct{})
	var once sync.Once
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		if sess.JID().Equal(slow.JID) {
			once.Do(func() { close(ended) })
		}
	})
	// The slow client never takes what it receives: its channel, then its
	// TCP buffers, then its queue on the server fill up.
	body := strings.Repeat("s", 4000)
loop:
	for i := 0; i < 5000; i++ {
		select {
		case <-ended:
			break loop
		default:
		}
		// Headlines: once the slow client is gone they are dropped, not
		// bounced back to a sender that does not read either.
		sender.SendRaw(t, fmt.Sprintf(`<message to="%s" type="headline"><body>%d %s</body></message>`, slow.JID, i, body))
	}
	select {
	case <-ended:
	case <-time.After(testenv.Timeout):
		t.Fatal("slow client still connected")
	}
	s.Others(t)
	testenv.Exchange(t, sender, s.Dial(t, s.AddUser(t, "fresh", "pw"), "pw", ""))
}

// A client may try again on the same stream (RFC 6120 §6.4.5): another
// password, or another mechanism, until the attempts run out.
func TestSASLRetry(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.AddUser(t, "alice", "right")
	st := s.StartTLS(t, "127.0.0.4")
	// A mechanism the client cannot do, a wrong password, then the right one.
	attempts := []struct{ send, want string }{
		{`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-256-PLUS">` + base64.StdEncoding.EncodeToString([]byte("p=tls-unique,,n=alice,r=abcdefgh")) + `</auth>`, "failure"},
		{testenv.PlainAuth("alice", "wrong"), "failure"},
		{testenv.PlainAuth("alice", "right"), "success"},
	}
	for i, a := range attempts {
		io.WriteString(st, a.send)
		el, err := st.Next()
		if err != nil || el.Local != a.want {
			t.Fatalf("attempt %d: got %v, %v; want <%s/>", i+1, el, err, a.want)
		}
	}

	// Five failures end the stream.
	st = s.StartTLS(t, "127.0.0.5")
	for i := 1; i <= 5; i++ {
		io.WriteString(st, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">AA==</auth>`)
		if el, err := st.Next(); err != nil || el.Local != "failure" {
			t.Fatalf("attempt %d: got %v, %v", i, el, err)
		}
	}
	if _, err := st.Next(); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("after five failures: %v", err)
	}
	s.Others(t)
}

// Retries on one stream count against the address's failure budget.
func TestSASLRetryCountsFailures(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxAuthFailures = 2 })
	s.AddUser(t, "alice", "right")
	st := s.StartTLS(t, "127.0.0.6")
	for i := 1; i <= 2; i++ {
		io.WriteString(st, testenv.PlainAuth("alice", "wrong"))
		if el, err := st.Next(); err != nil || el.Local != "failure" {
			t.Fatalf("attempt %d: got %v, %v", i, el, err)
		}
	}
	if _, err := st.Next(); err == nil || !strings.Contains(err.Error(), "policy-violation") {
		t.Fatalf("after the budget: %v", err)
	}
	s.Others(t)
}

// A client that vanishes without closing its stream is unregistered, and
// stanzas for it are handled as for any absent resource.
func TestAbruptDisconnect(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	ended := make(chan struct{})
	gone := s.Dial(t, s.AddUser(t, "gone", "pw"), "pw", "r")
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		if sess.JID().Equal(gone.JID) {
			close(ended)
		}
	})
	a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	gone.Abort() // TCP close, no </stream:stream>
	select {
	case <-ended:
	case <-time.After(testenv.Timeout):
		t.Fatal("session not ended after the connection was cut")
	}
	a.SendRaw(t, `<iq type="get" id="q" to="`+gone.JID.String()+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if el := a.Expect(t, "error", func(el *xmpp.Element) bool { return el.Get("id") == "q" }); el.Get("type") != "error" {
		t.Fatalf("IQ to a vanished resource: %s", el)
	}
	s.Others(t)
}

// When the database goes away, online clients keep talking (delivery to an
// online contact needs no storage) and logins fail cleanly, with
// <temporary-auth-failure/> (RFC 6120 §6.5.9; issue 21): the password was
// not wrong, it could not be checked.
func TestDatabaseGoesAway(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "pw")
		a := s.Dial(t, alice, "pw", "r")
		b := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "r")
		s.Store.Close()
		testenv.Exchange(t, a, b)
		testenv.Exchange(t, b, a)
		if _, err := s.DialFrom(t, "127.0.0.7", alice, "pw", "x"); err == nil || !strings.Contains(err.Error(), "<temporary-auth-failure") {
			t.Fatalf("login without a database: %v", err)
		}
		testenv.Exchange(t, a, b)
	})
}

// A client that pipelines its stream restart, bind and first stanzas in one
// write gets every one answered: nothing read ahead during negotiation is
// lost when the session takes over the connection.
func TestPipelinedAfterBind(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.AddUser(t, "alice", "pw")
	st := s.StartTLS(t, "127.0.0.7")
	io.WriteString(st, testenv.PlainAuth("alice", "pw"))
	if el, err := st.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v, %v", el, err)
	}
	io.WriteString(st, testenv.Header+
		`<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>pipe</resource></bind></iq>`+
		`<iq type="get" id="p1" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`+
		` <message to="alice@localhost/pipe" type="chat"><body>pipelined</body></message>`+
		`<iq type="get" id="p2" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	d := xml.NewDecoder(st)
	var got []string
	for len(got) < 5 {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local == "stream" {
			continue
		}
		el, err := xmpp.ReadElement(d, start)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case el.Local == "features":
			got = append(got, "features")
		case el.Local == "iq" && el.Get("type") == "result":
			got = append(got, "iq "+el.Get("id"))
		case el.Local == "message":
			got = append(got, "message "+el.Child(xmpp.NSClient, "body").Text())
		default:
			t.Fatalf("unexpected %s", el)
		}
	}
	if want := "features|iq b|iq p1|message pipelined|iq p2"; strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, "|"), want)
	}
}

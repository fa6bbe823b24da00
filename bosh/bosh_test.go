package bosh_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/bosh"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

func eachBackend(t *testing.T, f func(t *testing.T, backend string)) {
	testenv.EachBackend(t, f)
}

// online reports whether a session is bound to full.
func online(s *testenv.Server, full jid.JID) bool {
	return s.SessionOf(full) != nil
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func body(text string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && b != nil && b.Text() == text
	}
}

// TestChat: a BOSH client logs in (XEP-0206), chats with a TCP client both
// ways and gets its roster; the creation response carries what XEP-0124
// §7.2 and XEP-0206 §4 ask for.
func TestChat(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "alice pw")
		bob := s.AddUser(t, "bob", "bob pw")
		tcp := s.Dial(t, bob, "bob pw", "tcp")

		b := s.NewBOSH()
		created := b.Create(t, 10, 1, `ack="1"`)
		for attr, want := range map[string]string{
			"wait": "10", "hold": "1", "requests": "2", "ver": bosh.Version, "from": "localhost",
			"secure": "true", "inactivity": "60", "polling": "2", "maxpause": "120",
			"ack": fmt.Sprint(b.RID),
		} {
			if got := created.Get(attr); got != want {
				t.Errorf("creation %s=%q, want %q", attr, got, want)
			}
		}
		if created.Get("authid") == "" || created.Get("sid") == "" {
			t.Errorf("creation response lacks sid or authid: %s", created)
		}

		b2 := s.NewBOSH()
		full := b2.Login(t, alice, "alice pw", "web")
		if full.String() != "alice@localhost/web" {
			t.Fatalf("bound %s", full)
		}
		b2.Post(t, "", `<presence xmlns="jabber:client"/>`)
		b2.Post(t, "", `<message xmlns="jabber:client" type="chat" to="bob@localhost/tcp"><body>hi from bosh</body></message>`)
		if el := tcp.Expect(t, "message from BOSH", body("hi from bosh")); el.Get("from") != full.String() {
			t.Fatalf("from %s", el.Get("from"))
		}
		tcp.SendRaw(t, `<message type="chat" to="`+full.String()+`"><body>hi from tcp</body></message>`)
		b2.Until(t, "message from TCP", body("hi from tcp"))

		b2.Post(t, "", `<iq xmlns="jabber:client" type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>`)
		b2.Until(t, "roster result", func(el *xmpp.Element) bool { return el.Get("id") == "r1" && el.Get("type") == "result" })
	})
}

// TestOutOfOrder: a request that arrives before an earlier rid waits for
// it (XEP-0124 §14.2); the payloads reach the server in rid order.
func TestOutOfOrder(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	bob := s.AddUser(t, "bob", "bob pw")
	tcp := s.Dial(t, bob, "bob pw", "tcp")
	b := s.NewBOSH()
	b.Login(t, alice, "alice pw", "web")
	msg := func(text string) string {
		return `<message xmlns="jabber:client" type="chat" to="bob@localhost/tcp"><body>` + text + `</body></message>`
	}
	first, second := b.RID+1, b.RID+2
	b.RID = second
	var wg sync.WaitGroup
	wg.Add(1)
	var lateStatus int
	go func() {
		defer wg.Done()
		lateStatus, _ = b.PostRID(t, second, "", msg("second"))
	}()
	// The server has the second request and nothing reached bob yet.
	select {
	case el := <-tcp.In:
		t.Fatalf("delivered before the missing rid arrived: %s", el)
	case <-time.After(300 * time.Millisecond):
	}
	status, _ := b.PostRID(t, first, "", msg("first"))
	if status != 200 {
		t.Fatalf("first: status %d", status)
	}
	tcp.Expect(t, "first", func(el *xmpp.Element) bool {
		if b := el.Child("", "body"); b != nil && b.Text() == "second" {
			t.Fatal("second delivered before first")
		}
		return el.Local == "message"
	})
	tcp.Expect(t, "second", body("second"))
	// Answer the held request so that it returns.
	tcp.SendRaw(t, `<message type="chat" to="alice@localhost/web"><body>done</body></message>`)
	wg.Wait()
	if lateStatus != 200 {
		t.Fatalf("second: status %d", lateStatus)
	}
}

// TestRepeatedRID: a response the client did not get is sent again when the
// rid is repeated (XEP-0124 §14.3), and a request whose connection broke
// while it was held is taken over by the repeated one.
func TestRepeatedRID(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	bob := s.AddUser(t, "bob", "bob pw")
	tcp := s.Dial(t, bob, "bob pw", "tcp")
	b := s.NewBOSH()
	full := b.Login(t, alice, "alice pw", "web")

	// Answered, then asked again: the same response.
	tcp.SendRaw(t, `<message type="chat" to="`+full.String()+`"><body>one</body></message>`)
	b.Until(t, "one", body("one"))
	rid := b.RID
	_, again := b.PostRID(t, rid, "", "")
	if len(again.Elements()) != 1 || !body("one")(again.Elements()[0]) {
		t.Fatalf("repeated rid %d answered %s, want the message again", rid, again)
	}

	// Held, the connection breaks, the rid comes again and gets what
	// arrives meanwhile.
	b.RID++
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.DoContext(ctx, fmt.Sprintf(`<body xmlns="http://jabber.org/protocol/httpbind" sid="%s" rid="%d"/>`, b.SID, b.RID))
	}()
	time.Sleep(100 * time.Millisecond) // let the request be held
	cancel()
	<-done
	result := make(chan *xmpp.Element, 1)
	go func() {
		_, el := b.PostRID(t, b.RID, "", "")
		result <- el
	}()
	time.Sleep(100 * time.Millisecond)
	tcp.SendRaw(t, `<message type="chat" to="`+full.String()+`"><body>two</body></message>`)
	select {
	case el := <-result:
		if len(el.Elements()) != 1 || !body("two")(el.Elements()[0]) {
			t.Fatalf("taken-over request answered %s", el)
		}
	case <-time.After(testenv.Timeout):
		t.Fatal("the repeated rid was not answered")
	}
}

// TestWindow: rids outside the window end the session with item-not-found.
func TestWindow(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	for _, tc := range []struct {
		name string
		rid  func(b *testenv.BOSH) int64
	}{
		{"beyond the window", func(b *testenv.BOSH) int64 { return b.RID + 3 }},
		{"long answered", func(b *testenv.BOSH) int64 { return b.RID - 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := s.NewBOSH()
			full := b.Login(t, alice, "alice pw", tc.name)
			_, el := b.PostRID(t, tc.rid(b), "", "")
			if el.Get("type") != "terminate" || el.Get("condition") != "item-not-found" {
				t.Fatalf("answered %s, want terminate item-not-found", el)
			}
			waitFor(t, "the session to end", func() bool { return !online(s, full) })
			_, el = b.Post(t, "", "")
			if el.Get("condition") != "item-not-found" {
				t.Fatalf("after termination: %s", el)
			}
		})
	}
}

// TestInactivity: a session with no request for longer than inactivity
// ends, and its account goes unavailable.
func TestInactivity(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.BOSH.Inactivity = 300 * time.Millisecond
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	full := b.Login(t, alice, "alice pw", "web")
	if !online(s, full) {
		t.Fatal("not online after login")
	}
	waitFor(t, "the inactive session to end", func() bool { return !online(s, full) && s.BOSH.Sessions() == 0 })
	_, el := b.Post(t, "", "")
	if el.Get("type") != "terminate" || el.Get("condition") != "item-not-found" {
		t.Fatalf("a request after inactivity got %s", el)
	}
}

// TestInactivityWithGap: a client that skips a rid and goes away leaves a
// request waiting for one that never comes; the session still ends after
// the inactivity time, and the waiting request is answered with its end
// (issue 21: such sessions once stayed for ever).
func TestInactivityWithGap(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.BOSH.Inactivity = 300 * time.Millisecond
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	full := b.Login(t, alice, "alice pw", "web")
	answered := make(chan *xmpp.Element, 1)
	go func() {
		_, el := b.PostRID(t, b.RID+2, "", "") // rid+1 never comes
		answered <- el
	}()
	waitFor(t, "the session with a gap to end", func() bool { return !online(s, full) && s.BOSH.Sessions() == 0 })
	select {
	case el := <-answered:
		if el.Get("type") != "terminate" {
			t.Fatalf("the waiting request got %s, want terminate", el)
		}
	case <-time.After(testenv.Timeout):
		t.Fatal("the waiting request was never answered")
	}
}

// TestRepeatedRIDFreesOld: the connection whose request a repeated rid took
// over is answered (empty) once the wait passes, rather than held until its
// client goes (issue 21: a client could keep any number of them).
func TestRepeatedRIDFreesOld(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.BOSH.MaxWait = time.Second
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	b.Login(t, alice, "alice pw", "web")
	b.RID++
	type result struct {
		el   *xmpp.Element
		took time.Duration
	}
	results := make(chan result, 2)
	raw := fmt.Sprintf(`<body xmlns="http://jabber.org/protocol/httpbind" sid="%s" rid="%d"/>`, b.SID, b.RID)
	post := func() { // DoContext: the two share b, which Post does not allow
		start := time.Now()
		_, data, err := b.DoContext(context.Background(), raw)
		el, perr := xmpp.ParseElement(data)
		if err != nil || perr != nil {
			el = xmpp.NewElement("", "error", "text", fmt.Sprint(err, perr))
		}
		results <- result{el, time.Since(start)}
	}
	go post()
	time.Sleep(100 * time.Millisecond) // the first is held
	go post()                          // and taken over
	for range 2 {
		select {
		case r := <-results:
			if r.el.Local != "body" || r.el.Get("type") == "terminate" {
				t.Fatalf("answered %s", r.el)
			}
			if r.took > 3*time.Second {
				t.Fatalf("a request held %v with a wait of 1 s", r.took)
			}
		case <-time.After(testenv.Timeout):
			t.Fatal("a request is still held")
		}
	}
}

// TestBadRequests: requests the endpoint cannot take.
func TestBadRequests(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) { srv.MaxStanzaSize = 4096 })
	for _, tc := range []struct {
		name, raw, condition string
		status               int
	}{
		{"bad sid", `<body xmlns="http://jabber.org/protocol/httpbind" sid="nosuchsession" rid="5"/>`, "item-not-found", 404},
		{"not XML", `this is not XML`, "bad-request", 400},
		{"unclosed body", `<body xmlns="http://jabber.org/protocol/httpbind" rid="5">`, "bad-request", 400},
		{"not a body", `<iq xmlns="jabber:client" rid="5"/>`, "bad-request", 400},
		{"no rid", `<body xmlns="http://jabber.org/protocol/httpbind" to="localhost" wait="60" hold="1"/>`, "bad-request", 400},
		{"unknown host", `<body xmlns="http://jabber.org/protocol/httpbind" to="example.org" rid="5" wait="60" hold="1"/>`, "host-unknown", 200},
		{"attribute twice", `<body xmlns="http://jabber.org/protocol/httpbind" to="localhost" to="example.org" rid="5" wait="60" hold="1"/>`, "bad-request", 400},
		{"too large", `<body xmlns="http://jabber.org/protocol/httpbind" sid="x" rid="5">` + strings.Repeat(" ", 64<<10) + `</body>`, "policy-violation", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, data, err := s.NewBOSH().DoContext(context.Background(), tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			el, err := xmpp.ParseElement(data)
			if err != nil {
				t.Fatalf("response %q: %v", data, err)
			}
			if status != tc.status || el.Get("type") != "terminate" || el.Get("condition") != tc.condition {
				t.Fatalf("got %d %s, want %d terminate %s", status, el, tc.status, tc.condition)
			}
		})
	}
	s.Others(t)
}

// TestTerminate: the client ends its session; the account goes offline.
func TestTerminate(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	full := b.Login(t, alice, "alice pw", "web")
	_, el := b.Post(t, `type="terminate"`, `<presence xmlns="jabber:client" type="unavailable"/>`)
	if el.Get("type") != "terminate" {
		t.Fatalf("terminate answered %s", el)
	}
	waitFor(t, "the session to end", func() bool { return !online(s, full) && s.BOSH.Sessions() == 0 })
}

// TestPause: a pause within maxpause answers the held requests at once; a
// longer one is a policy violation (XEP-0124 §10).
func TestPause(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	b.Login(t, alice, "alice pw", "web")
	start := time.Now()
	_, el := b.Post(t, `pause="60"`, "")
	if el.Get("type") == "terminate" || time.Since(start) > 5*time.Second {
		t.Fatalf("pause answered %s after %v", el, time.Since(start))
	}
	_, el = b.Post(t, `pause="1000"`, "")
	if el.Get("condition") != "policy-violation" {
		t.Fatalf("too long a pause answered %s", el)
	}
}

// TestStreamError: a stream error from the server ends the BOSH session
// with remote-stream-error and the error itself (XEP-0206 §7).
func TestStreamError(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	b := s.NewBOSH()
	b.Login(t, alice, "alice pw", "same")
	s.Dial(t, alice, "alice pw", "same") // replaces the BOSH session
	deadline := time.Now().Add(testenv.Timeout)
	for time.Now().Before(deadline) {
		_, el := b.Post(t, "", "")
		if el.Get("type") != "terminate" {
			continue
		}
		if el.Get("condition") != "remote-stream-error" || !strings.Contains(el.String(), "conflict") {
			t.Fatalf("terminated with %s, want remote-stream-error with <conflict/>", el)
		}
		return
	}
	t.Fatal("the session was not terminated")
}

// TestCORS: pages from allowed origins get CORS headers; others are
// refused.
func TestCORS(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"http://localhost:8080", 204},
		{"https://evil.example", 403},
	} {
		req, _ := http.NewRequest(http.MethodOptions, s.BOSHURL(), nil)
		req.Header.Set("Origin", tc.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: preflight status %d, want %d", tc.origin, resp.StatusCode, tc.status)
		}
		if tc.status == 204 && (resp.Header.Get("Access-Control-Allow-Origin") != tc.origin ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "content-type")) {
			t.Fatalf("%s: preflight headers %v", tc.origin, resp.Header)
		}
	}
}

// TestInsecure: plain HTTP from outside the secure networks cannot
// authenticate; the client is told to use HTTPS.
func TestInsecure(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	s.Web.SecureNetworks = nil
	b := s.NewBOSH()
	created := b.Create(t, 5, 1, "")
	if created.Get("secure") != "false" {
		t.Fatalf("secure=%q", created.Get("secure"))
	}
	var all strings.Builder
	all.WriteString(created.String())
	for i := 0; i < 5; i++ {
		payload := ""
		if i == 0 {
			payload = testenv.PlainAuth(alice.Localpart(), "alice pw")
		}
		_, el := b.Post(t, "", payload)
		all.WriteString(el.String())
		if el.Get("type") == "terminate" {
			break
		}
	}
	for _, want := range []string{"encryption-required", "HTTPS", `condition="remote-stream-error"`, "policy-violation"} {
		if !strings.Contains(all.String(), want) {
			t.Fatalf("responses lack %s:\n%s", want, all.String())
		}
	}
	if strings.Contains(all.String(), "<success") {
		t.Fatal("authenticated over plain HTTP from an untrusted network")
	}
}

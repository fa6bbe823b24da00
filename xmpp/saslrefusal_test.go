package xmpp_test

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// debugLog gives the server a debug-level log that the test reads.
func debugLog(log *testenv.LogBuffer) func(*xmpp.Server) {
	return func(s *xmpp.Server) {
		s.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// An attempt refused before any password is checked says why in the
// <failure/>'s <text/> and in the debug log: over TLS 1.3 a -PLUS
// mechanism asking for tls-unique (RFC 9266 defines tls-exporter there,
// and tls-unique does not exist in TLS 1.3), and the "y" flag after the
// server offered -PLUS (RFC 5802 §6: a possible downgrade). A wrong
// password gets no text.
func TestSASLRefusalSaysWhy(t *testing.T) {
	var log testenv.LogBuffer
	s := testenv.Start(t, "sqlite", debugLog(&log))
	s.AddUser(t, "alice", "right")
	st := s.StartTLS(t, "127.0.0.6")
	// XEP-0440: the one channel binding type the -PLUS mechanisms take.
	if cb := st.Features.Child(xmpp.NSChannelBinding, "sasl-channel-binding"); cb == nil ||
		len(cb.Elements()) != 1 || cb.Elements()[0].Local != "channel-binding" || cb.Elements()[0].Get("type") != "tls-exporter" {
		t.Errorf("features after TLS 1.3 (want XEP-0440's tls-exporter alone): %s", st.Features.Bytes(xmpp.NSClient))
	}
	auth := func(mech, msg string) string {
		return `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="` + mech + `">` + base64.StdEncoding.EncodeToString([]byte(msg)) + `</auth>`
	}
	for i, a := range []struct{ send, text string }{
		{auth("SCRAM-SHA-256-PLUS", "p=tls-unique,,n=alice,r=abcdefgh"), `channel binding type "tls-unique" is not supported`},
		{auth("SCRAM-SHA-1-PLUS", "n,,n=alice,r=abcdefgh"), "needs channel binding"},
		{auth("SCRAM-SHA-256", "y,,n=alice,r=abcdefgh"), "possible downgrade attack"},
		{testenv.PlainAuth("alice", "wrong"), ""},
	} {
		io.WriteString(st, a.send)
		el, err := st.Next()
		if err != nil || el.Local != "failure" || el.Child("", "not-authorized") == nil {
			t.Fatalf("attempt %d: got %v, %v; want <failure><not-authorized/>", i+1, el, err)
		}
		text := el.Child("", "text")
		switch {
		case a.text == "" && text != nil:
			t.Errorf("attempt %d: a wrong password gets text %q; it should say nothing", i+1, text.Text())
		case a.text != "" && (text == nil || !strings.Contains(text.Text(), a.text)):
			t.Errorf("attempt %d: failure %v, want a <text/> with %q", i+1, el, a.text)
		}
		if a.text != "" && !strings.Contains(log.String(), "authentication attempt refused") {
			t.Errorf("attempt %d: no debug line for the refusal in the log:\n%s", i+1, log.String())
		}
	}
	io.WriteString(st, testenv.PlainAuth("alice", "right"))
	if el, err := st.Next(); err != nil || el.Local != "success" {
		t.Fatalf("after the refusals: %v, %v; want <success/>", el, err)
	}
	if !strings.Contains(log.String(), "mechanism=SCRAM-SHA-256-PLUS attempt=1 reason=\"channel binding type") {
		t.Errorf("the log lacks the refused -PLUS attempt:\n%s", log.String())
	}
}

// slixmpp's default login over TLS 1.3: it asks for tls-unique in both
// -PLUS mechanisms, then sends the "y" flag with both SCRAM ones, and signs
// in with PLAIN over TLS. Each refusal reaches it with the reason, and the
// server logs each at debug.
func TestSlixmppDefaultLogin(t *testing.T) {
	testenv.NeedSlixmpp(t)
	var log testenv.LogBuffer
	s := testenv.Start(t, "sqlite", debugLog(&log))
	s.AddUser(t, "alice", "alice pw")
	_, c2s, _ := net.SplitHostPort(s.C2S)
	c := s.StartSlix(t, c2s, "--mode", "starttls", "--jid", "alice@localhost/slix", "--password", "alice pw")
	var texts []string
	timeout := time.After(testenv.Timeout)
	for started := false; !started; {
		select {
		case ev, ok := <-c.Events:
			switch {
			case !ok:
				t.Fatalf("slixmpp ended before signing in; refusals %q", texts)
			case ev.Event == "auth_failed":
				texts = append(texts, ev.Text)
			case ev.Event == "session_start":
				started = true
			}
		case <-timeout:
			t.Fatalf("slixmpp did not sign in; refusals %q", texts)
		}
	}
	want := []string{"tls-unique", "tls-unique", "possible downgrade", "possible downgrade"}
	if len(texts) != len(want) {
		t.Fatalf("slixmpp saw %d refusals %q, want %d", len(texts), texts, len(want))
	}
	for i, w := range want {
		if !strings.Contains(texts[i], w) {
			t.Errorf("refusal %d said %q, want %q in it", i+1, texts[i], w)
		}
	}
	if n := strings.Count(log.String(), "authentication attempt refused"); n != len(want) {
		t.Errorf("%d refusals logged at debug, want %d:\n%s", n, len(want), log.String())
	}
}

// Client-final-messages whose fields have no "=" (one once panicked the
// server, which ended every session: FuzzSCRAM found it) are refused like
// any malformed message, and the server goes on serving.
func TestSCRAMMalformedFinal(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "right")
	for _, final := range []string{"c,p=", "c,r,p=AAAA", "r,c=biws,p="} {
		st := s.StartTLS(t, "127.0.0.7")
		io.WriteString(st, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-256">`+
			base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=abcdefgh"))+`</auth>`)
		if el, err := st.Next(); err != nil || el.Local != "challenge" {
			t.Fatalf("%q: got %v, %v; want a <challenge/>", final, el, err)
		}
		io.WriteString(st, `<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl">`+base64.StdEncoding.EncodeToString([]byte(final))+`</response>`)
		if el, err := st.Next(); err != nil || el.Local != "failure" || el.Child("", "not-authorized") == nil {
			t.Fatalf("%q: got %v, %v; want <failure><not-authorized/>", final, el, err)
		}
	}
	s.Dial(t, alice, "right", "r") // still serving
}

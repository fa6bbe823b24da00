package xmpp_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestWebSocketChat: a client over WebSocket (RFC 7395) logs in, chats
// with a TCP client both ways, and sees the contact's presence; the
// server's messages follow the framing rules (one element each, <open/>
// with the stream's attributes, namespaces declared on every element).
func TestWebSocketChat(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "alice pw")
		bob := s.AddUser(t, "bob", "bob pw")
		ws := s.DialWebSocket(t, alice, "alice pw", "web")
		tcp := s.Dial(t, bob, "bob pw", "tcp")
		if ws.JID.String() != "alice@localhost/web" {
			t.Fatalf("bound %s", ws.JID)
		}
		testenv.Exchange(t, ws, tcp)
		testenv.Exchange(t, tcp, ws)

		// A roster get and an answer over the same stream.
		ws.SendRaw(t, `<iq type="get" id="r1"><query xmlns="jabber:iq:roster"/></iq>`)
		ws.Expect(t, "roster result", func(el *xmpp.Element) bool {
			return el.Local == "iq" && el.Get("id") == "r1" && el.Get("type") == "result"
		})
	})
}

// TestWebSocketFraming checks the messages themselves.
func TestWebSocketFraming(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.AddUser(t, "alice", "alice pw")
	wc, resp, err := s.WebSocket(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", p)
	}
	send := func(msg string) {
		if err := wc.WS.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		_, msg, err := wc.WS.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`)
	open := read()
	for _, want := range []string{`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing"`, `from="localhost"`, `id="`, `version="1.0"`, `/>`} {
		if !strings.Contains(open, want) {
			t.Fatalf("open %s lacks %s", open, want)
		}
	}
	features := read()
	if !strings.HasPrefix(features, `<stream:features xmlns:stream="http://etherx.jabber.org/streams"`) ||
		!strings.Contains(features, "PLAIN") || strings.Contains(features, "starttls") {
		t.Fatalf("features %s: want PLAIN, no STARTTLS, the stream prefix declared", features)
	}
	send(testenv.PlainAuth("alice", "alice pw"))
	if got := read(); !strings.HasPrefix(got, `<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"`) {
		t.Fatalf("auth: %s", got)
	}
	send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`)
	read()
	if got := read(); !strings.Contains(got, "urn:ietf:params:xml:ns:xmpp-bind") {
		t.Fatalf("features after auth: %s", got)
	}
	send(`<iq type="set" id="b" xmlns="jabber:client"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`)
	read()
	send(`<iq type="get" id="p" xmlns="jabber:client"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if got := read(); !strings.HasPrefix(got, `<iq xmlns="jabber:client"`) || !strings.Contains(got, `id="p"`) {
		t.Fatalf("ping answer %s: want one iq declaring jabber:client", got)
	}
	send(`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`)
	if got := read(); got != `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>` {
		t.Fatalf("close answered with %s", got)
	}
	if _, _, err := wc.WS.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after <close/>: %v, want a normal WebSocket close", err)
	}
}

// TestWebSocketHandshake: the subprotocol is required, and pages from
// origins that are not allowed are refused.
func TestWebSocketHandshake(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	for _, tc := range []struct {
		name    string
		origin  string
		origins []string
		status  int
	}{
		{"no origin (not a browser)", "", nil, 101},
		{"loopback page", "http://127.0.0.1:8080", nil, 101},
		{"localhost page", "http://localhost:3000", nil, 101},
		{"the server's own page", "http://" + s.HTTP, []string{"https://app.example"}, 101},
		{"foreign page", "https://evil.example", nil, 403},
		{"configured origin", "https://app.example", []string{"https://app.example"}, 101},
		{"not configured", "http://127.0.0.1:8080", []string{"https://app.example"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Web.Origins = tc.origins
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			wc, resp, err := s.WebSocket(h)
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if wc != nil {
				wc.Close()
			}
		})
	}
	s.Web.Origins = nil
	d := websocket.Dialer{HandshakeTimeout: testenv.Timeout}
	_, resp, err := d.Dial(s.WebSocketURL(), nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("without the xmpp subprotocol: %v %v, want 400", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "subprotocol") {
		t.Fatalf("400 body %q does not say why", body)
	}
}

// TestWebSocketInsecure: plain HTTP from outside the secure networks
// cannot authenticate, and the client is told why.
func TestWebSocketInsecure(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.AddUser(t, "alice", "alice pw")
	s.Web.SecureNetworks = nil
	wc, _, err := s.WebSocket(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	wc.WS.WriteMessage(websocket.TextMessage, []byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>`))
	wc.WS.WriteMessage(websocket.TextMessage, []byte(testenv.PlainAuth("alice", "alice pw")))
	var all []string
	for {
		_, msg, err := wc.WS.ReadMessage()
		if err != nil {
			break
		}
		all = append(all, string(msg))
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"<encryption-required/>", "HTTPS", "<policy-violation", `<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>`} {
		if !strings.Contains(joined, want) {
			t.Fatalf("messages lack %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "<success") {
		t.Fatal("authenticated over an insecure transport")
	}
}

// TestWebSocketBadInput: each kind of bad message gets its stream error
// and ends that stream alone.
func TestWebSocketBadInput(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) { srv.MaxStanzaSize = 4096 })
	alice := s.AddUser(t, "alice", "alice pw")
	for _, tc := range []struct {
		name, condition string
		send            func(ws *websocket.Conn)
	}{
		{"not well-formed", "not-well-formed", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte(`<message><body>x</message>`))
		}},
		{"oversized", "policy-violation", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte(`<message><body>`+strings.Repeat("x", 64<<10)+`</body></message>`))
		}},
		{"binary message", "bad-format", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, []byte(`<presence/>`))
		}},
		{"open with an attribute twice", "not-well-formed", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" to="example.org" version="1.0"/>`))
		}},
		{"open in the wrong namespace", "invalid-namespace", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte(`<open xmlns="jabber:client" to="localhost"/>`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.DialWebSocket(t, alice, "alice pw", "")
			tc.send(c.WebSocket())
			c.ExpectStreamError(t, tc.condition)
		})
	}
	s.Others(t)
}

// TestWebSocketKeepalive: a client that does not answer WebSocket pings is
// disconnected, and its account goes unavailable; one that answers stays.
func TestWebSocketKeepalive(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.PingInterval = 300 * time.Millisecond
		srv.PingTimeout = 300 * time.Millisecond
		// The core sends web sessions no XMPP pings: only the
		// WebSocket's own pings keep watch.
	})
	alice := s.AddUser(t, "alice", "alice pw")
	bob := s.AddUser(t, "bob", "bob pw")
	live := s.DialWebSocket(t, alice, "alice pw", "live")
	// gorilla answers pings while a read is in progress; the deaf client
	// answers none.
	wc, _, err := s.WebSocket(nil)
	if err != nil {
		t.Fatal(err)
	}
	wc.WS.SetPingHandler(func(string) error { return nil })
	deaf := s.LoginWebSocket(t, wc, bob, "bob pw", "deaf")
	select {
	case <-deaf.In:
	case <-time.After(testenv.Timeout):
		t.Fatal("a client that answers no pings is still connected")
	}
	for range deaf.In {
	}
	// The live one answered the WebSocket pings and is still served.
	live.SendRaw(t, `<iq type="get" id="still"><ping xmlns="urn:xmpp:ping"/></iq>`)
	live.Expect(t, "ping answer", func(el *xmpp.Element) bool { return el.Get("id") == "still" })
}

// A WebSocket stream to a domain we do not serve: <open/>, the error and
// <close/>, each message one whole element (RFC 7395 §3.3.3), and no
// features list around the error.
func TestWebSocketUnknownHost(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	wc, _, err := s.WebSocket(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	wc.WS.WriteMessage(websocket.TextMessage, []byte(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>`))
	var all []string
	for {
		_, msg, err := wc.WS.ReadMessage()
		if err != nil {
			break
		}
		all = append(all, string(msg))
		d := xml.NewDecoder(strings.NewReader(string(msg)))
		if _, err := xmpp.NextElement(d); err != nil {
			t.Fatalf("message %q is not one element: %v", msg, err)
		}
	}
	if len(all) != 3 || !strings.HasPrefix(all[0], "<open") || !strings.Contains(all[1], "<host-unknown") || !strings.HasPrefix(all[2], "<close") {
		t.Fatalf("want <open/>, <host-unknown/> and <close/>, got %q", all)
	}
}

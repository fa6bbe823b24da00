package web_test

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestHostMeta: XEP-0156 discovery lists both transports, as the client
// reaches them (through a trusted proxy too), readable from any origin.
func TestHostMeta(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	base := "http://" + s.HTTP

	resp, body := get(t, base+"/.well-known/host-meta", nil)
	var xrd struct {
		Links []struct {
			Rel  string `xml:"rel,attr"`
			Href string `xml:"href,attr"`
		} `xml:"Link"`
	}
	if err := xml.Unmarshal([]byte(body), &xrd); err != nil {
		t.Fatalf("host-meta %q: %v", body, err)
	}
	links := map[string]string{}
	for _, l := range xrd.Links {
		links[l.Rel] = l.Href
	}
	if links["urn:xmpp:alt-connections:xbosh"] != base+"/http-bind" || links["urn:xmpp:alt-connections:websocket"] != "ws://"+s.HTTP+"/ws" {
		t.Fatalf("host-meta links %v", links)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("host-meta CORS header %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}

	s.Web.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	_, body = get(t, base+"/.well-known/host-meta.json", map[string]string{
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.com",
	})
	var jrd struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	if err := json.Unmarshal([]byte(body), &jrd); err != nil {
		t.Fatalf("host-meta.json %q: %v", body, err)
	}
	got := map[string]string{}
	for _, l := range jrd.Links {
		got[l.Rel] = l.Href
	}
	if got["urn:xmpp:alt-connections:xbosh"] != "https://chat.example.com/http-bind" || got["urn:xmpp:alt-connections:websocket"] != "wss://chat.example.com/ws" {
		t.Fatalf("behind a proxy, host-meta.json links %v", got)
	}
}

// TestChatConfig: the web client's config.js names this server.
func TestChatConfig(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	resp, body := get(t, "http://"+s.HTTP+"/chat/config.js", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"domain":"localhost"`) ||
		!strings.Contains(body, `"websocket":"ws://`+s.HTTP+`/ws"`) || !strings.Contains(body, `"bosh":"http://`+s.HTTP+`/http-bind"`) {
		t.Fatalf("config.js: %d %s", resp.StatusCode, body)
	}
}

// TestOfflineAndPresence: features tried over TCP elsewhere, over the web
// transports: messages stored while the account was offline arrive at a
// WebSocket or BOSH login, and a contact's presence (they share a team)
// reaches the web client and the web client's reaches the contact.
func TestOfflineAndPresence(t *testing.T) {
	s, alice, bob := start(t, "sqlite")
	tcp := s.Dial(t, bob, "bob pw", "tcp")
	tcp.SendRaw(t, `<presence/>`)
	isBody := func(text string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool {
			b := el.Child("", "body")
			return el.Local == "message" && b != nil && b.Text() == text && el.Child("urn:xmpp:delay", "delay") != nil
		}
	}
	presenceFrom := func(from, typ string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("from") == from && el.Get("type") == typ
		}
	}
	// both matches when each of a and b has matched some element, in
	// either order (Expect and Until skip what does not match).
	both := func(a, b func(*xmpp.Element) bool) func(*xmpp.Element) bool {
		var sawA, sawB bool
		return func(el *xmpp.Element) bool {
			sawA = sawA || a(el)
			sawB = sawB || b(el)
			return sawA && sawB
		}
	}

	// stored sends a message to alice while she is offline, and waits until
	// bob's session has handled it (its next IQ is answered after it).
	stored := func(text string) {
		t.Helper()
		tcp.SendRaw(t, `<message type="chat" to="alice@localhost"><body>`+text+`</body></message><iq type="get" id="sync"><ping xmlns="urn:xmpp:ping"/></iq>`)
		tcp.Expect(t, "ping answer", func(el *xmpp.Element) bool { return el.Get("id") == "sync" })
	}

	// WebSocket.
	stored("while you were away (ws)")
	ws := s.DialWebSocket(t, alice, "alice pw", "ws")
	ws.SendRaw(t, `<presence/>`)
	ws.Expect(t, "bob's presence and the offline message", both(presenceFrom("bob@localhost/tcp", ""), isBody("while you were away (ws)")))
	tcp.Expect(t, "alice's presence over WebSocket", presenceFrom("alice@localhost/ws", ""))
	ws.Close()
	tcp.Expect(t, "alice gone", presenceFrom("alice@localhost/ws", "unavailable"))

	// BOSH.
	stored("while you were away (bosh)")
	b := s.NewBOSH()
	b.Login(t, alice, "alice pw", "bosh")
	b.Post(t, "", `<presence xmlns="jabber:client"/>`)
	b.Until(t, "bob's presence and the offline message", both(presenceFrom("bob@localhost/tcp", ""), isBody("while you were away (bosh)")))
	tcp.Expect(t, "alice's presence over BOSH", presenceFrom("alice@localhost/bosh", ""))
	b.Post(t, `type="terminate"`, `<presence xmlns="jabber:client" type="unavailable"/>`)
	tcp.Expect(t, "alice gone", presenceFrom("alice@localhost/bosh", "unavailable"))
}

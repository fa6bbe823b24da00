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

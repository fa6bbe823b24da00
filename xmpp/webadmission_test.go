package xmpp_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// One kept-alive HTTP connection pays the connection rate for every web
// stream after its first: BOSH session creations posted in a loop on it are
// refused as a loop of new connections would be (XEP-0124 §17
// policy-violation, with the stream error's text), and so is a WebSocket
// upgrade on a connection that already started a BOSH session (429). The
// first stream of a connection is what the connection paid for at accept,
// whether a BOSH session or a WebSocket after other requests.
func TestWebStreamsPayConnectionRate(t *testing.T) {
	const burst = 4
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.ConnRatePerIP, s.ConnBurstPerIP = 0.01, burst // one token per 100 s after the burst
		s.MaxUnauthPerIP = 100                          // only the rate refuses here
	})
	c := dialFrom(t, "127.0.0.41", s.HTTP) // pays one token at accept
	c.SetDeadline(time.Now().Add(testenv.Timeout))
	br := bufio.NewReader(c)
	roundTrip := func(req string) (*http.Response, string) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	create := func(rid int) string {
		t.Helper()
		body := fmt.Sprintf(`<body xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh" to="%s" rid="%d" wait="5" hold="1" ver="1.6" xmpp:version="1.0"/>`, testenv.Domain, rid)
		_, out := roundTrip(fmt.Sprintf("POST /http-bind HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s", s.HTTP, len(body), body))
		return out
	}
	// The first creation is free, the next burst-1 take the rest of the
	// bucket, the one after is refused: all on one connection.
	for i := range burst {
		if out := create(100 * (i + 1)); !strings.Contains(out, `sid="`) || strings.Contains(out, "terminate") {
			t.Fatalf("creation %d of %d within the rate: %s", i+1, burst, out)
		}
	}
	out := create(100 * (burst + 1))
	if !strings.Contains(out, `type="terminate"`) || !strings.Contains(out, `condition="policy-violation"`) ||
		!strings.Contains(out, "too many new connections") {
		t.Fatalf("creation past the rate on one connection: %s", out)
	}
	upgrade := fmt.Sprintf("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n", s.HTTP)
	if resp, out := roundTrip(upgrade); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(out, "too many new connections") {
		t.Fatalf("WebSocket upgrade past the rate after BOSH sessions on the same connection: %s %q", resp.Status, out)
	}

	// Another address: a WebSocket after a plain request on the same
	// connection is the connection's first stream, and works.
	c2 := dialFrom(t, "127.0.0.42", s.HTTP)
	c2.SetDeadline(time.Now().Add(testenv.Timeout))
	br2 := bufio.NewReader(c2)
	for _, step := range []struct {
		req  string
		want int
	}{{fmt.Sprintf("GET /.well-known/host-meta HTTP/1.1\r\nHost: %s\r\n\r\n", s.HTTP), http.StatusOK}, {upgrade, http.StatusSwitchingProtocols}} {
		if _, err := io.WriteString(c2, step.req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != step.want {
			t.Fatalf("%q: %s, want %d", strings.SplitN(step.req, "\r\n", 2)[0], resp.Status, step.want)
		}
		if step.want == http.StatusOK {
			io.Copy(io.Discard, resp.Body)
		}
	}
}

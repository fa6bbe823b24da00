package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/wsclient"
	"github.com/xmppd/xmppd/xmpp"
)

// WebSocketURL is the server's RFC 7395 endpoint.
func (s *Server) WebSocketURL() string { return "ws://" + s.HTTP + "/ws" }

// BOSHURL is the server's XEP-0206 endpoint.
func (s *Server) BOSHURL() string { return "http://" + s.HTTP + "/http-bind" }

// WebSocket opens a WebSocket to the server with the xmpp subprotocol and
// the given extra headers (an Origin, say). The connection presents the
// RFC 7395 framing as a classic stream.
func (s *Server) WebSocket(header http.Header) (*wsclient.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{"xmpp"}, HandshakeTimeout: Timeout}
	ws, resp, err := d.Dial(s.WebSocketURL(), header)
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadDeadline(time.Now().Add(Timeout))
	return wsclient.New(ws, s.Server.Domain), resp, nil
}

// DialWebSocket logs in over WebSocket with PLAIN (loopback counts as a
// secure network) and binds resource; the Client is the same as Dial's.
func (s *Server) DialWebSocket(t testing.TB, user jid.JID, password, resource string) *Client {
	t.Helper()
	wc, _, err := s.WebSocket(nil)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	return s.LoginWebSocket(t, wc, user, password, resource)
}

// LoginWebSocket is DialWebSocket on a WebSocket the test opened itself.
func (s *Server) LoginWebSocket(t testing.TB, wc *wsclient.Conn, user jid.JID, password, resource string) *Client {
	t.Helper()
	d, err := restart(wc, s.header())
	if err != nil {
		wc.Close()
		t.Fatalf("websocket stream: %v", err)
	}
	c, err := login(wc, d, s.header(), user, password, resource)
	if err != nil {
		wc.Close()
		t.Fatalf("websocket login %s: %v", user, err)
	}
	wc.WS.SetReadDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return c
}

// WebSocket is the WebSocket of a client from DialWebSocket.
func (c *Client) WebSocket() *websocket.Conn { return c.conn.(*wsclient.Conn).WS }

// BOSH is a scripted BOSH client (XEP-0124/0206): each Post is one HTTP
// request with the next rid, so tests can also send rids out of order,
// again, or out of the window.
type BOSH struct {
	URL string
	SID string
	// RID is the rid of the last request made with Post.
	RID    int64
	Header http.Header
	client *http.Client
	// received holds the elements of every response that Until has not
	// looked at yet.
	received []*xmpp.Element
}

// NewBOSH returns a client that has not created its session yet.
func (s *Server) NewBOSH() *BOSH {
	return &BOSH{URL: s.BOSHURL(), RID: 1000, Header: http.Header{}, client: &http.Client{Timeout: 2 * Timeout}}
}

// Create starts a session with wait and hold and the extra attributes,
// and returns the creation response.
func (b *BOSH) Create(t testing.TB, wait, hold int, attrs string) *xmpp.Element {
	t.Helper()
	b.RID++
	_, el := b.Do(t, b.RID, fmt.Sprintf(`<body xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh" to="%s" rid="%d" wait="%d" hold="%d" ver="1.6" xml:lang="en" xmpp:version="1.0" %s/>`,
		Domain, b.RID, wait, hold, attrs))
	b.SID = el.Get("sid")
	if b.SID == "" {
		t.Fatalf("session creation answered %s", el)
	}
	return el
}

// Post sends payload with the next rid and the extra body attributes.
func (b *BOSH) Post(t testing.TB, attrs, payload string) (int, *xmpp.Element) {
	t.Helper()
	b.RID++
	return b.PostRID(t, b.RID, attrs, payload)
}

// PostRID sends a request with the given rid.
func (b *BOSH) PostRID(t testing.TB, rid int64, attrs, payload string) (int, *xmpp.Element) {
	t.Helper()
	return b.Do(t, rid, fmt.Sprintf(`<body xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh" sid="%s" rid="%d" %s>%s</body>`, b.SID, rid, attrs, payload))
}

// Do posts a raw request body and parses the response's <body/>.
func (b *BOSH) Do(t testing.TB, rid int64, raw string) (int, *xmpp.Element) {
	t.Helper()
	status, data, err := b.DoContext(context.Background(), raw)
	if err != nil {
		t.Fatalf("rid %d: %v", rid, err)
	}
	el, err := xmpp.ParseElement(data)
	if err != nil {
		t.Fatalf("rid %d: response %q: %v", rid, data, err)
	}
	b.received = append(b.received, el.Elements()...)
	return status, el
}

// DoContext posts a raw request body.
func (b *BOSH) DoContext(ctx context.Context, raw string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.URL, strings.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range b.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// Until returns the first element received (in any response so far, or
// in those of empty requests it then posts) that match accepts, skipping
// the others, as Client.Expect does.
func (b *BOSH) Until(t testing.TB, what string, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		for len(b.received) > 0 {
			el := b.received[0]
			b.received = b.received[1:]
			if match(el) {
				return el
			}
		}
		if time.Now().After(deadline) {
			break
		}
		_, body := b.Post(t, "", "")
		if body.Get("type") == "terminate" {
			t.Fatalf("waiting for %s: session terminated: %s", what, body)
		}
	}
	t.Fatalf("timed out waiting for %s", what)
	return nil
}

// Login creates a session (wait 1 s, so that a request with nothing to
// answer does not hold a sequential test up; hold 1), authenticates with PLAIN,
// restarts the stream, binds resource and returns the full JID.
func (b *BOSH) Login(t testing.TB, user jid.JID, password, resource string) jid.JID {
	t.Helper()
	b.Create(t, 1, 1, "")
	b.Until(t, "stream features", isFeatures)
	_, full := b.signIn(t, user.Localpart(), password, resource)
	return full
}

// signIn authenticates with PLAIN on a session whose first features have
// come, restarts the stream and binds resource; it returns the features
// after the restart and the full JID.
func (b *BOSH) signIn(t testing.TB, user, password, resource string) (*xmpp.Element, jid.JID) {
	t.Helper()
	b.Post(t, "", PlainAuth(user, password))
	b.Until(t, "SASL success", isAuthOutcome(t))
	b.Post(t, `xmpp:restart="true" to="`+Domain+`"`, "")
	features := b.Until(t, "stream features after restart", isFeatures)
	b.Post(t, "", bindPayload(resource))
	return features, bound(t, b.Until(t, "bind result", func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == "bind" }))
}

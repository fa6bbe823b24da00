package testenv

import (
	"encoding/xml"
	"io"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/wsclient"
	"github.com/xmppd/xmppd/xmpp"
)

// The web transports, as OpenWeb names them.
const (
	TransportWebSocket = "websocket"
	TransportBOSH      = "bosh"
)

// WebTransports are the names OpenWeb takes, for tests that run one
// scenario over each web transport.
func WebTransports() []string { return []string{TransportWebSocket, TransportBOSH} }

// WebClient is a client stream over a web transport, scripted element by
// element from before authentication on, so that one scenario can run
// over WebSocket and BOSH from a table. Stanzas sent over either must
// declare xmlns="jabber:client" (in BOSH they are children of <body/>).
type WebClient interface {
	// Features are the stream features last received: before sign-in,
	// then after it.
	Features() *xmpp.Element
	// Send writes XML elements to the server.
	Send(t testing.TB, elements string)
	// Until returns the first element received that match accepts,
	// skipping the others.
	Until(t testing.TB, what string, match func(*xmpp.Element) bool) *xmpp.Element
	// SignIn authenticates with PLAIN, restarts the stream and binds
	// resource (server-generated if empty); it returns the full JID.
	SignIn(t testing.TB, user, password, resource string) jid.JID
}

// OpenWeb opens a stream over the named web transport (TransportWebSocket
// or TransportBOSH) and reads its first features; it is closed when t
// ends.
func (s *Server) OpenWeb(t testing.TB, transport string) WebClient {
	t.Helper()
	switch transport {
	case TransportWebSocket:
		wc, _, err := s.WebSocket(nil)
		if err != nil {
			t.Fatalf("websocket: %v", err)
		}
		d, features, err := restartFeatures(wc, s.header())
		if err != nil {
			wc.Close()
			t.Fatalf("websocket stream: %v", err)
		}
		w := &webSocketClient{s: s, wc: wc, d: d, features: features}
		t.Cleanup(func() {
			wc.Write([]byte("</stream:stream>"))
			wc.Close()
		})
		return w
	case TransportBOSH:
		b := s.NewBOSH()
		b.Create(t, 1, 1, "")
		w := &boshClient{b: b}
		w.features = b.Until(t, "stream features", isFeatures)
		t.Cleanup(func() {
			b.RID++
			b.DoContext(t.Context(), `<body xmlns="http://jabber.org/protocol/httpbind" sid="`+b.SID+`" rid="`+itoa(int(b.RID))+`" type="terminate"/>`)
		})
		return w
	}
	t.Fatalf("unknown web transport %q", transport)
	return nil
}

func isFeatures(el *xmpp.Element) bool { return el.Local == "features" }

// bindPayload is the IQ that binds resource.
func bindPayload(resource string) string {
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	return `<iq xmlns="jabber:client" type="set" id="bind"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">` + res + `</bind></iq>`
}

// bound reads the full JID from a bind result.
func bound(t testing.TB, iq *xmpp.Element) jid.JID {
	t.Helper()
	b := iq.Child("", "bind")
	if iq.Get("type") != "result" || b == nil {
		t.Fatalf("bind: %s", iq)
	}
	full, err := jid.Parse(b.Child("", "jid").Text())
	if err != nil {
		t.Fatalf("bind: %s: %v", iq, err)
	}
	return full
}

func isAuthOutcome(t testing.TB) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if el.Local == "failure" {
			t.Fatalf("authentication failed: %s", el)
		}
		return el.Local == "success"
	}
}

type webSocketClient struct {
	s        *Server
	wc       *wsclient.Conn
	d        *xml.Decoder
	features *xmpp.Element
}

func (w *webSocketClient) Features() *xmpp.Element { return w.features }

func (w *webSocketClient) Send(t testing.TB, elements string) {
	t.Helper()
	if _, err := io.WriteString(w.wc, elements); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

func (w *webSocketClient) Until(t testing.TB, what string, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	w.wc.SetReadDeadline(time.Now().Add(Timeout))
	for {
		el, err := next(w.d)
		if err != nil {
			t.Fatalf("websocket: waiting for %s: %v", what, err)
		}
		if match(el) {
			return el
		}
	}
}

func (w *webSocketClient) SignIn(t testing.TB, user, password, resource string) jid.JID {
	t.Helper()
	w.Send(t, PlainAuth(user, password))
	w.Until(t, "SASL success", isAuthOutcome(t))
	d, features, err := restartFeatures(w.wc, w.s.header())
	if err != nil {
		t.Fatalf("websocket stream after authentication: %v", err)
	}
	w.d, w.features = d, features
	w.Send(t, bindPayload(resource))
	return bound(t, w.Until(t, "bind result", func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == "bind" }))
}

type boshClient struct {
	b        *BOSH
	features *xmpp.Element
}

func (w *boshClient) Features() *xmpp.Element { return w.features }

func (w *boshClient) Send(t testing.TB, elements string) {
	t.Helper()
	if _, body := w.b.Post(t, "", elements); body.Get("type") == "terminate" {
		t.Fatalf("BOSH session terminated: %s", body)
	}
}

func (w *boshClient) Until(t testing.TB, what string, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	return w.b.Until(t, what, match)
}

func (w *boshClient) SignIn(t testing.TB, user, password, resource string) jid.JID {
	t.Helper()
	features, full := w.b.signIn(t, user, password, resource)
	w.features = features
	return full
}

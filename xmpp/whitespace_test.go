package xmpp_test

import (
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// Whitespace between top-level elements is allowed at every step of stream
// negotiation (RFC 6120 §11.7), and clients send it: go-sendxmpp writes a
// newline after each element. Each case puts it at one step only, so a
// failure names the step.
func TestWhitespaceDuringNegotiation(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "pw")
	steps := []string{"after header", "before starttls", "after tls header", "before auth", "after auth", "after sasl header", "before bind", "after bind"}
	for _, mode := range []string{"starttls", "direct tls"} {
		for _, step := range append(steps, "everywhere") {
			if mode == "direct tls" && (step == "before starttls" || step == "after header") {
				continue
			}
			t.Run(mode+"/"+step, func(t *testing.T) {
				ws := func(at string) string {
					if at == step || step == "everywhere" {
						return "\n  \t\r\n"
					}
					return ""
				}
				var conn net.Conn
				var err error
				if mode == "starttls" {
					conn, err = net.Dial("tcp", s.C2S)
				} else {
					conn, err = tls.Dial("tcp", s.DirectTLS, s.ClientTLS())
				}
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(testenv.Timeout))
				var rw io.ReadWriter = conn
				d := open(t, rw, ws("after header"))
				if mode == "starttls" {
					send(t, rw, ws("before starttls")+`<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`)
					expect(t, d, "proceed")
					tc := tls.Client(conn, s.ClientTLS())
					rw = tc
					d = open(t, rw, ws("after tls header"))
				}
				send(t, rw, ws("before auth")+testenv.PlainAuth("alice", "pw")+ws("after auth"))
				expect(t, d, "success")
				d = open(t, rw, ws("after sasl header"))
				send(t, rw, ws("before bind")+`<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>`+ws("after bind"))
				if el := expect(t, d, "iq"); el.Get("type") != "result" {
					t.Fatalf("bind: %s", el)
				}
				send(t, rw, `<message to="`+alice.String()+`" type="normal"><body>hi</body></message>`+"\n")
				// The server sent no presence yet, so a message to our own
				// bare JID comes back only once we are available.
				send(t, rw, "<presence/>\n")
				send(t, rw, `<iq type="get" id="p" to="`+s.Server.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`+"\n")
				for {
					el := next(t, d)
					if el.Local == "iq" && el.Get("id") == "p" {
						if el.Get("type") != "result" {
							t.Fatalf("ping: %s", el)
						}
						return
					}
				}
			})
		}
	}
	s.Others(t)
}

func open(t *testing.T, rw io.ReadWriter, ws string) *xml.Decoder {
	t.Helper()
	send(t, rw, testenv.Header+ws)
	d := xml.NewDecoder(rw)
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("reading stream header: %v", err)
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "stream" {
			break
		}
	}
	expect(t, d, "features")
	return d
}

func send(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, d *xml.Decoder) *xmpp.Element {
	t.Helper()
	el, err := xmpp.NextElement(d)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if el.Local == "error" && el.Space == xmpp.NSStream {
		t.Fatalf("stream error: %s", el)
	}
	return el
}

func expect(t *testing.T, d *xml.Decoder, local string) *xmpp.Element {
	t.Helper()
	el := next(t, d)
	if el.Local != local {
		t.Fatalf("got %s, want <%s/>", el, local)
	}
	return el
}

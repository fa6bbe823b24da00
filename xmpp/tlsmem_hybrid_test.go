package xmpp_test

import (
	"crypto/tls"
	"encoding/xml"
	"io"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// The server takes the hybrid post-quantum key exchange that Go, Chrome and
// OpenSSL 3.5 clients offer first, over STARTTLS and direct TLS, and the
// classic one from clients that offer only that; either way the stream goes
// on over TLS after the handshake (whose buffers the server releases).
func TestTLSKeyExchangeOffered(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")

	t.Run("STARTTLS, Go's default", func(t *testing.T) {
		ts := s.StartTLS(t, "127.0.0.1")
		if got := ts.ConnectionState().CurveID; got != tls.X25519MLKEM768 {
			t.Fatalf("negotiated %v, want X25519MLKEM768", got)
		}
		io.WriteString(ts, testenv.PlainAuth(alice.Localpart(), "alice pw"))
		if el, err := ts.Next(); err != nil || el.Local != "success" {
			t.Fatalf("after PLAIN: %v, %v; want success", el, err)
		}
	})

	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
		want   tls.CurveID
	}{
		{"direct TLS, Go's default", nil, tls.X25519MLKEM768},
		{"direct TLS, X25519 and P-256 only", []tls.CurveID{tls.X25519, tls.CurveP256}, tls.X25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := s.ClientTLS()
			conf.CurvePreferences = tc.curves
			c, err := tls.Dial("tcp", s.DirectTLS, conf)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().CurveID; got != tc.want {
				t.Fatalf("negotiated %v, want %v", got, tc.want)
			}
			if _, err := io.WriteString(c, testenv.Header); err != nil {
				t.Fatal(err)
			}
			d := xml.NewDecoder(c)
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatal("stream header:", err)
				}
				if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "stream" {
					break
				}
			}
			if el, err := xmpp.NextElement(d); err != nil || el.Local != "features" || el.Child(xmpp.NSSASL, "mechanisms") == nil {
				t.Fatalf("features: %v, %v; want SASL mechanisms", el, err)
			}
		})
	}
}

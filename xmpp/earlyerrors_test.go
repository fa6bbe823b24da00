package xmpp_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// wellFormed checks that a server's whole output on a stream that it ended is
// one well-formed XML document: the stream header, top-level elements, a
// <stream:error/> as a direct child of the stream if there is one, and the
// stream's end. A strict parser (sendxmpp's, say) must see the error, not a
// syntax error.
func wellFormed(out string) error {
	d := xml.NewDecoder(strings.NewReader(out))
	depth, streams := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 {
				return fmt.Errorf("output ends inside %d open elements", depth)
			}
			if streams == 0 {
				return errors.New("no stream header")
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space == xmpp.NSStream && tok.Name.Local == "stream" {
				if depth != 0 {
					return errors.New("stream header inside an element")
				}
				streams++
			}
			if tok.Name.Space == xmpp.NSStream && tok.Name.Local == "error" && depth != 1 {
				return fmt.Errorf("stream error at depth %d, want 1 (a child of the stream)", depth)
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth != 2 && strings.TrimSpace(string(tok)) != "" && depth < 2 {
				return fmt.Errorf("text %q outside elements", tok)
			}
		}
	}
}

// Every way the server ends a stream before it is negotiated leaves a
// well-formed document with the stream error at the top level: above all, no
// error inside an open <stream:features/>, which is what a stream to a
// domain we do not serve used to get.
func TestEarlyStreamErrorsWellFormed(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.MaxUnauthPerIP = 2
		s.MaxAuthFailures = 1
		s.MaxStanzaSize = 4096
	})
	s.AddUser(t, "alice", "pw")
	wrongHost := strings.Replace(testenv.Header, `to="localhost"`, `to="example.org"`, 1)
	check := func(t *testing.T, out, want string) {
		t.Helper()
		if err := wellFormed(out); err != nil {
			t.Fatalf("not well-formed (%v): %q", err, out)
		}
		if got := testenv.StreamErrorCondition(out); got != want {
			t.Fatalf("stream error %q, want %q: %q", got, want, out)
		}
	}
	// Plain TCP: every input of TestBadInputBeforeAuth, and a few more.
	for _, tc := range []struct{ name, send, want string }{
		{"unknown host", wrongHost, "host-unknown"},
		{"no to", strings.Replace(testenv.Header, ` to="localhost"`, "", 1), "host-unknown"},
		{"user as host", strings.Replace(testenv.Header, `to="localhost"`, `to="alice@localhost"`, 1), "host-unknown"},
		{"unknown host then more", wrongHost + `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`, "host-unknown"},
		{"wrong namespace", strings.Replace(testenv.Header, `xmlns="jabber:client"`, `xmlns="jabber:other"`, 1), "invalid-namespace"},
		{"malformed", testenv.Header + `<<>`, "not-well-formed"},
		{"malformed header", `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="localhost" version="1.0"<`, "not-well-formed"},
		{"comment", testenv.Header + `<!-- hello -->`, "restricted-xml"},
		{"DTD", `<?xml version="1.0"?><!DOCTYPE stream [<!ENTITY x "y">]>` + testenv.Header, "restricted-xml"},
		{"message before auth", testenv.Header + `<message to="a@localhost"><body>hi</body></message>`, "not-authorized"},
		{"oversized", testenv.Header + `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls" pad="` + strings.Repeat("x", 8000) + `"/>`, "policy-violation"},
		{"auth before TLS", testenv.Header + testenv.PlainAuth("alice", "pw"), "policy-violation"},
		{"unknown feature", testenv.Header + `<compress xmlns="http://jabber.org/protocol/compress"/>`, "policy-violation"},
		// Attributes given twice, which encoding/xml (and so mellium)
		// would take, the last one winning (XML 1.0 §3.1).
		{"header attribute twice", strings.Replace(testenv.Header, `to="localhost"`, `to="localhost" to="example.org"`, 1), "not-well-formed"},
		{"starttls attribute twice", testenv.Header + `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls" a="1" a="2"/>`, "not-well-formed"},
		{"auth attribute twice", testenv.Header + `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN" mechanism="SCRAM-SHA-1">AA==</auth>`, "not-well-formed"},
	} {
		t.Run("tcp/"+tc.name, func(t *testing.T) {
			r := s.DialRaw(t, "127.0.0.1")
			io.WriteString(r, tc.send)
			check(t, r.ReadUntilClosed(t), tc.want)
		})
	}

	t.Run("direct tls/unknown host", func(t *testing.T) {
		c, err := tls.Dial("tcp", s.DirectTLS, s.ClientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, wrongHost)
		check(t, readAll(t, c), "host-unknown")
	})

	// The host is checked again on each restart, after TLS and after SASL.
	t.Run("starttls/unknown host after TLS", func(t *testing.T) {
		tc, out := startTLSRaw(t, s)
		io.WriteString(tc, wrongHost)
		check(t, readAll(t, tc), "host-unknown")
		if err := wellFormed(out + "</stream:stream>"); err != nil {
			t.Fatalf("before TLS: %v: %q", err, out)
		}
	})
	t.Run("starttls/unknown host after SASL", func(t *testing.T) {
		tc, _ := startTLSRaw(t, s)
		io.WriteString(tc, testenv.Header+testenv.PlainAuth("alice", "pw"))
		d := xml.NewDecoder(tc)
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "success" {
				d.Skip()
				break
			}
		}
		io.WriteString(tc, wrongHost)
		check(t, readAll(t, tc), "host-unknown")
	})

	t.Run("starttls/auth attribute twice after TLS", func(t *testing.T) {
		tc, _ := startTLSRaw(t, s)
		io.WriteString(tc, testenv.Header)
		readUntil(t, tc, "</stream:features>")
		io.WriteString(tc, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN" mechanism="SCRAM-SHA-1">`+strings.TrimPrefix(testenv.PlainAuth("alice", "pw"), `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">`))
		check(t, testenv.Header+readAll(t, tc), "not-well-formed")
	})

	// A TLS handshake that fails after <proceed/> gets no stream error in
	// plain text on a connection the client now speaks TLS on: it is closed
	// (RFC 6120 §5.4.3.2).
	t.Run("starttls/handshake fails", func(t *testing.T) {
		r := s.DialRaw(t, "127.0.0.1")
		io.WriteString(r, testenv.Header+`<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`)
		readUntil(t, r, proceed)
		io.WriteString(r, "this is not a TLS client hello\r\n\r\n")
		out := r.ReadUntilClosed(t)
		if strings.Contains(out, "stream:error") || strings.Contains(out, "</stream:stream>") {
			t.Fatalf("plain text after <proceed/>: %q", out)
		}
	})

	// Too many connections from one address: refused before anything else.
	t.Run("connection limit", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			r := s.DialRaw(t, "127.0.0.9")
			io.WriteString(r, testenv.Header)
			readUntil(t, r, "</stream:features>")
		}
		check(t, s.DialRaw(t, "127.0.0.9").ReadUntilClosed(t), "policy-violation")
	})

	// An address whose failures are used up.
	t.Run("blocked address", func(t *testing.T) {
		if _, err := s.DialFrom(t, "127.0.0.10", jid.MustParse("alice@localhost"), "wrong", ""); err == nil {
			t.Fatal("wrong password accepted")
		}
		r := s.DialRaw(t, "127.0.0.10")
		io.WriteString(r, testenv.Header)
		check(t, r.ReadUntilClosed(t), "policy-violation")
	})

	// A stream that does not finish negotiating in time.
	t.Run("timeout", func(t *testing.T) {
		s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.NegotiationTimeout = 200 * time.Millisecond })
		r := s.DialRaw(t, "127.0.0.1")
		io.WriteString(r, testenv.Header)
		check(t, r.ReadUntilClosed(t), "connection-timeout")
	})

	// Shutdown during negotiation.
	t.Run("shutdown", func(t *testing.T) {
		s := testenv.Start(t, "sqlite")
		r := s.DialRaw(t, "127.0.0.1")
		io.WriteString(r, testenv.Header)
		readUntil(t, r, "</stream:features>")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go s.Shutdown(ctx)
		out := r.ReadUntilClosed(t)
		// What came before was read above; the rest is the stream's end.
		check(t, testenv.Header+out, "system-shutdown")
	})
	s.Others(t)
}

const proceed = `<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`

// startTLSRaw negotiates TLS on a raw connection and returns it, with the
// plain text the server sent before.
func startTLSRaw(t *testing.T, s *testenv.Server) (*tls.Conn, string) {
	t.Helper()
	r := s.DialRaw(t, "127.0.0.1")
	io.WriteString(r, testenv.Header+`<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`)
	out := readUntil(t, r, proceed)
	tc := tls.Client(r, s.ClientTLS())
	t.Cleanup(func() { tc.Close() })
	return tc, out
}

// readUntil reads from c, a byte at a time so that nothing after it is
// taken, until what was read ends with marker, and returns it.
func readUntil(t *testing.T, c net.Conn, marker string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testenv.Timeout))
	defer c.SetReadDeadline(time.Time{})
	var out []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(out), marker) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", marker, err, out)
		}
		out = append(out, b[0])
	}
	return string(out)
}

// readAll reads until the server closes the connection.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testenv.Timeout))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection; got %q", b)
	}
	return string(b)
}

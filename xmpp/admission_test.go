package xmpp_test

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// An office behind one NAT address: 100 signed-in sessions from one address
// (50 people with two devices each) all work with the default limits, which
// only count connections that have not signed in yet.
func TestManySessionsFromOneAddress(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.MaxUnauthPerIP, s.ConnRatePerIP, s.ConnBurstPerIP = 0, 0, 0 // the defaults
	})
	const people = 50
	var clients []*testenv.Client
	for i := 0; i < people; i++ {
		u := s.AddUser(t, fmt.Sprintf("staff%d", i), "pw")
		for _, res := range []string{"laptop", "phone"} {
			c, err := s.DialFrom(t, "127.0.0.20", u, "pw", res)
			if err != nil {
				t.Fatalf("session %d of 100: %v", len(clients)+1, err)
			}
			clients = append(clients, c)
		}
	}
	if xmpp.DefaultMaxUnauthPerIP >= len(clients) {
		t.Fatalf("the test proves nothing: the unauthenticated cap (%d) is not below %d sessions", xmpp.DefaultMaxUnauthPerIP, len(clients))
	}
	testenv.Exchange(t, clients[0], clients[len(clients)-1])
	testenv.Exchange(t, clients[len(clients)-1], clients[0])
	testenv.Exchange(t, clients[51], clients[2])
}

// Connections from one address that do not sign in are cut at the cap on
// every listener, at accept: on the STARTTLS port with a stream error, on the
// direct TLS and federation ports by closing before any TLS work.
func TestUnauthenticatedFloodIsCut(t *testing.T) {
	const max = 8
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.MaxUnauthPerIP = max
		s.ConnRatePerIP = -1 // this test is about the cap alone
	})
	for _, l := range []struct{ name, addr, ip string }{
		{"starttls", s.C2S, "127.0.0.21"},
		{"direct tls", s.DirectTLS, "127.0.0.22"},
		{"s2s", s.S2S, "127.0.0.23"},
	} {
		t.Run(l.name, func(t *testing.T) {
			// Silent connections: no header, no TLS client hello.
			for i := 0; i < max; i++ {
				c := dialFrom(t, l.ip, l.addr)
				// Held open: nothing arrives within a short wait.
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, err := c.Read(make([]byte, 1)); !isTimeout(err) {
					t.Fatalf("connection %d of %d was not held: %d bytes, %v", i+1, max, n, err)
				}
			}
			for i := 0; i < 20; i++ {
				out, closed := readToClose(t, dialFrom(t, l.ip, l.addr))
				if !closed {
					t.Fatalf("connection %d over the cap was held", i+1)
				}
				if l.name == "starttls" {
					if got := testenv.StreamErrorCondition(out); got != "policy-violation" {
						t.Fatalf("over the cap: %q", out)
					}
					if err := wellFormed(out); err != nil {
						t.Fatalf("%v: %q", err, out)
					}
				} else if out != "" {
					t.Fatalf("plain text on a TLS port: %q", out)
				}
			}
		})
	}
	// Another address is not affected, nor is signing in from the flooded
	// one: a session that binds gives its slot back.
	s.Others(t)
	u := s.AddUser(t, "worker", "pw")
	for i := 0; i < max+2; i++ {
		if _, err := s.DialFrom(t, "127.0.0.24", u, "pw", fmt.Sprint("r", i)); err != nil {
			t.Fatalf("sign-in %d: %v", i+1, err)
		}
	}
}

// New connections from one address beyond its rate are closed at accept, on
// the HTTP listener too; other addresses are not affected.
func TestConnectionRatePerAddress(t *testing.T) {
	const burst = 5
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.ConnRatePerIP, s.ConnBurstPerIP = 0.01, burst // one new connection per 100 s after the burst
	})
	for i := 0; i < burst; i++ {
		c := dialFrom(t, "127.0.0.25", s.C2S)
		io.WriteString(c, testenv.Header)
		readUntil(t, c, "</stream:features>")
	}
	out, closed := readToClose(t, dialFrom(t, "127.0.0.25", s.C2S))
	if !closed || testenv.StreamErrorCondition(out) != "policy-violation" || !strings.Contains(out, "too many new connections") {
		t.Fatalf("connection over the rate: %q", out)
	}
	// The HTTP listener: a WebSocket from a fresh address works within the
	// burst and is refused beyond it.
	d := websocket.Dialer{Subprotocols: []string{"xmpp"}, HandshakeTimeout: testenv.Timeout,
		NetDial: func(network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.26")}}
			return nd.Dial(network, addr)
		}}
	for i := 0; i < burst; i++ {
		ws, _, err := d.Dial(s.WebSocketURL(), nil)
		if err != nil {
			t.Fatalf("websocket %d within the burst: %v", i+1, err)
		}
		ws.Close()
	}
	if ws, _, err := d.Dial(s.WebSocketURL(), nil); err == nil {
		ws.Close()
		t.Fatal("websocket over the rate was accepted")
	}
	s.Others(t)
}

// Signed-in sessions are limited per account: one more resource than the
// limit is refused at bind with <resource-constraint/> (RFC 6120 §7.6.2.1),
// while replacing a resource of the same name still works.
func TestSessionsPerAccount(t *testing.T) {
	const max = 3
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.MaxSessionsPerAccount = max })
	alice := s.AddUser(t, "alice", "pw")
	var first *testenv.Client
	for i := 0; i < max; i++ {
		c := s.Dial(t, alice, "pw", fmt.Sprint("r", i))
		if i == 0 {
			first = c
		}
	}
	st := s.StartTLS(t, "127.0.0.1")
	io.WriteString(st, testenv.PlainAuth("alice", "pw"))
	if el, err := st.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v %v", el, err)
	}
	d := restartRaw(t, st)
	io.WriteString(st, `<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>one-too-many</resource></bind></iq>`)
	el := next(t, d)
	if got := errorCondition(el); got != "resource-constraint" || el.Child("", "error").Get("type") != "wait" {
		t.Fatalf("bind over the limit: %s", el)
	}
	// Same name as an existing resource: allowed, the old one is replaced.
	s.Dial(t, alice, "pw", "r0")
	first.ExpectStreamError(t, "conflict")
	s.Others(t)
}

// A TLS handshake has its own, shorter bound within the negotiation timeout:
// a client that connects to the direct TLS port and says nothing is closed
// after it.
func TestTLSHandshakeTimeout(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.TLSHandshakeTimeout = 100 * time.Millisecond
		s.NegotiationTimeout = time.Hour
	})
	c := dialFrom(t, "127.0.0.27", s.DirectTLS)
	if _, closed := readToClose(t, c); !closed {
		t.Fatal("silent direct TLS connection not closed")
	}
	// A real handshake is not affected.
	tc, err := tls.Dial("tcp", s.DirectTLS, s.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	tc.Close()
}

func dialFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: testenv.Timeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readToClose reads until the server closes c (true) or a few seconds pass
// (false), and returns what it read.
func readToClose(t *testing.T, c net.Conn) (string, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// restartRaw restarts the stream on st after authentication and returns a
// decoder positioned after the new features.
func restartRaw(t *testing.T, st *testenv.TLSStream) *xml.Decoder {
	t.Helper()
	return open(t, st, "")
}

// Guessing one account's password from many addresses, each below its own
// failure limit, locks the account for new addresses: even the right
// password from one is refused, so guesses test nothing, while the owner
// signs in from the address they used before, and other accounts are not
// affected.
func TestDistributedGuessingLocksAccount(t *testing.T) {
	const max = 5
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.MaxAuthFailures = 2
		s.MaxAccountAuthFailures = max
	})
	alice := s.AddUser(t, "alice", "right")
	bob := s.AddUser(t, "bob", "pw")
	if _, err := s.DialFrom(t, "127.0.0.50", alice, "right", "home"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < max; i++ {
		if _, err := s.DialFrom(t, fmt.Sprintf("127.0.0.%d", 60+i), alice, "guess", ""); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	// Locked: the right password from a new address fails as a wrong one.
	if _, err := s.DialFrom(t, "127.0.0.70", alice, "right", ""); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("right password from a new address while locked: %v", err)
	}
	if err := s.DialMech(alice, "right", sasl.ScramSha256); err == nil {
		t.Fatal("SCRAM from a new address while locked succeeded")
	}
	// The owner, from where they signed in before.
	if _, err := s.DialFrom(t, "127.0.0.50", alice, "right", "laptop"); err != nil {
		t.Fatalf("owner from a known address: %v", err)
	}
	// Another account, from a new address.
	if _, err := s.DialFrom(t, "127.0.0.71", bob, "pw", ""); err != nil {
		t.Fatalf("another account: %v", err)
	}
	s.Others(t)
}

// Guesses on an account that does not exist are not counted per account:
// there is nothing to lock, and a flood of made-up names must not fill
// memory.
func TestGuessingUnknownAccountsLocksNothing(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.MaxAuthFailures = -1
		s.MaxAccountAuthFailures = 1
	})
	ghost := jid.MustParse("ghost@localhost")
	for i := 0; i < 3; i++ {
		if _, err := s.DialFrom(t, "127.0.0.80", ghost, "x", ""); err == nil {
			t.Fatal("an unknown account signed in")
		}
	}
	// ghost now gets an account: nothing was held against it.
	s.AddUser(t, "ghost", "pw")
	if _, err := s.DialFrom(t, "127.0.0.81", ghost, "pw", ""); err != nil {
		t.Fatalf("new account after guesses on its name: %v", err)
	}
}

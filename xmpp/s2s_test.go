package xmpp_test

import (
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

const remoteDomain = "remote.test"

// TestFederationMessages: users of two xmppd servers exchange messages
// both ways over server-to-server streams secured with STARTTLS and
// authenticated with dialback (the test certificates are not valid for
// either domain, so dialback is the only way).
func TestFederationMessages(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		local, remote := testenv.StartPair(t, backend, remoteDomain)
		alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
		bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
		if bob.JID.String() != "bob@remote.test/b" {
			t.Fatalf("bound %s", bob.JID)
		}
		testenv.Exchange(t, alice, bob)
		testenv.Exchange(t, bob, alice)
		if got := links(local); got["localhost "+remoteDomain] != "dialback" {
			t.Errorf("outgoing links %v: the test certificates are valid for nobody, want dialback", got)
		}
		// An IQ crosses and its answer comes back.
		alice.SendRaw(t, `<iq type="get" id="v1" to="`+remoteDomain+`"><query xmlns="jabber:iq:version"/></iq>`)
		r := alice.Expect(t, "version result", func(el *xmpp.Element) bool { return el.Get("id") == "v1" })
		if r.Get("type") != "result" || r.Get("from") != remoteDomain {
			t.Fatalf("version answer %s", r)
		}
		for _, q := range []string{`<ping xmlns="urn:xmpp:ping"/>`, `<query xmlns="http://jabber.org/protocol/disco#info"/>`} {
			alice.SendRaw(t, `<iq type="get" id="q" to="`+remoteDomain+`">`+q+`</iq>`)
			if r := alice.Expect(t, "answer", func(el *xmpp.Element) bool { return el.Get("id") == "q" }); r.Get("type") != "result" {
				t.Fatalf("%s across servers: %s", q, r)
			}
		}
		// An IQ to a user of the other server that has no such resource
		// comes back as an error from there.
		alice.SendRaw(t, `<iq type="get" id="nores" to="bob@`+remoteDomain+`/nope"><ping xmlns="urn:xmpp:ping"/></iq>`)
		if r := alice.Expect(t, "error", func(el *xmpp.Element) bool { return el.Get("id") == "nores" }); r.Get("type") != "error" {
			t.Fatalf("IQ to a missing remote resource: %s", r)
		}
	})
}

// TestFederationUnreachable: a stanza to a domain whose server does not
// answer bounces with remote-server-not-found.
func TestFederationUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.S2SRoutes = map[string]string{"gone.test": dead}
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "a")
	alice.SendRaw(t, `<message type="chat" id="m1" to="bob@gone.test"><body>hi</body></message>`)
	el := alice.Expect(t, "bounce", func(el *xmpp.Element) bool { return el.Get("id") == "m1" })
	if el.Get("type") != "error" || el.Get("from") != "bob@gone.test" || !strings.Contains(el.String(), "remote-server-not-found") {
		t.Fatalf("bounce %s", el)
	}
}

// TestFederationSpoofedFrom: a peer that sends from a domain it has not
// proved on the stream gets <invalid-from/>.
func TestFederationSpoofedFrom(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	s.AddUser(t, "alice", "pw")
	conn, err := net.Dial("tcp", s.S2S)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testenv.Timeout))
	header := `<stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" xmlns:db="jabber:server:dialback" version="1.0" from="evil.test" to="localhost">`
	io.WriteString(conn, header)
	d := xml.NewDecoder(conn)
	until := func(d *xml.Decoder, local string) {
		t.Helper()
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("waiting for <%s>: %v", local, err)
			}
			if st, ok := tok.(xml.StartElement); ok && st.Name.Local == local {
				return
			}
		}
	}
	until(d, "starttls")
	io.WriteString(conn, `<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`)
	until(d, "proceed")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	io.WriteString(tc, header)
	d = xml.NewDecoder(tc)
	until(d, "dialback")
	io.WriteString(tc, `<message from="mallory@evil.test" to="alice@localhost" type="chat"><body>trust me</body></message>`)
	var out strings.Builder
	b := make([]byte, 4096)
	for {
		n, err := tc.Read(b)
		out.Write(b[:n])
		if err != nil || strings.Contains(out.String(), "</stream:stream>") {
			break
		}
	}
	if !strings.Contains(out.String(), "<invalid-from") {
		t.Fatalf("spoofed from answered with %q", out.String())
	}
}

// TestFederationSubscription: a presence subscription across servers
// (RFC 6121 §3.1), after which the contact's presence reaches the user.
func TestFederationSubscription(t *testing.T) {
	local, remote := testenv.StartPair(t, "sqlite", remoteDomain)
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	alice.SendRaw(t, `<presence/>`)
	bob.SendRaw(t, `<presence/>`)
	alice.SendRaw(t, `<presence to="bob@remote.test" type="subscribe"/>`)
	bob.Expect(t, "subscription request", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribe" && el.Get("from") == "alice@localhost"
	})
	bob.SendRaw(t, `<presence to="alice@localhost" type="subscribed"/>`)
	alice.Expect(t, "subscription approval", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribed" && el.Get("from") == "bob@remote.test"
	})
	alice.Expect(t, "bob's presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "" && el.Get("from") == "bob@remote.test/b"
	})
	// Bob going offline reaches alice too.
	bob.SendRaw(t, `<presence type="unavailable"/>`)
	alice.Expect(t, "bob's unavailable presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "unavailable" && el.Get("from") == "bob@remote.test/b"
	})
}

// TestFederationMUC: a remote user joins one of our rooms and chats in it.
func TestFederationMUC(t *testing.T) {
	local, remote := testenv.StartPair(t, "sqlite", remoteDomain, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true})
	})
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	room := "lobby@conference.localhost"
	alice.SendRaw(t, `<presence to="`+room+`/alice"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	alice.Expect(t, "own presence", func(el *xmpp.Element) bool { return el.Get("from") == room+"/alice" })
	alice.SendRaw(t, `<iq type="set" id="inst" to="`+room+`"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query></iq>`)
	alice.Expect(t, "instant room", func(el *xmpp.Element) bool { return el.Get("id") == "inst" })

	bob.SendRaw(t, `<presence to="`+room+`/bob"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	bob.Expect(t, "own presence in a remote room", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == room+"/bob" && el.Get("type") == ""
	})
	alice.Expect(t, "bob joined", func(el *xmpp.Element) bool { return el.Get("from") == room+"/bob" })
	bob.SendRaw(t, `<message type="groupchat" to="`+room+`"><body>hello from afar</body></message>`)
	for _, c := range []*testenv.Client{alice, bob} {
		c.Expect(t, "groupchat", func(el *xmpp.Element) bool {
			b := el.Child("", "body")
			return el.Get("type") == "groupchat" && el.Get("from") == room+"/bob" && b != nil && b.Text() == "hello from afar"
		})
	}
}

// TestFederationExternal: servers whose certificates are valid for their
// domains authenticate each other with SASL EXTERNAL, not dialback; a
// certificate for another name falls back to dialback.
func TestFederationExternal(t *testing.T) {
	ca := testenv.NewCA(t)
	for _, tc := range []struct {
		name, remoteCertFor, want string
	}{
		{"valid certificates", remoteDomain, "external"},
		{"a certificate for another domain", "elsewhere.test", "dialback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			la, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lb, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			local := testenv.StartWithS2S(t, "sqlite", la, func(srv *xmpp.Server) {
				srv.TLSConfig = xmpp.TLSConfig(ca.Issue(t, testenv.Domain))
				srv.S2SRootCAs = ca.Pool
				srv.S2SRoutes = map[string]string{remoteDomain: lb.Addr().String()}
			})
			remote := testenv.StartWithS2S(t, "sqlite", lb, func(srv *xmpp.Server) {
				srv.Domain = remoteDomain
				// Also for localhost: testenv's clients check that name.
				srv.TLSConfig = xmpp.TLSConfig(ca.Issue(t, tc.remoteCertFor, testenv.Domain))
				srv.S2SRootCAs = ca.Pool
				srv.S2SRoutes = map[string]string{testenv.Domain: la.Addr().String()}
			})
			local.Roots.AppendCertsFromPEM(ca.PEM)
			remote.Roots.AppendCertsFromPEM(ca.PEM)
			alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
			bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
			testenv.Exchange(t, alice, bob)
			testenv.Exchange(t, bob, alice)
			if got := links(local); got[testenv.Domain+" "+remoteDomain] != "external" {
				t.Errorf("localhost → remote.test: %v, want external (remote.test trusts localhost's certificate)", got)
			}
			if got := links(remote); got[remoteDomain+" "+testenv.Domain] != tc.want {
				t.Errorf("remote.test → localhost: %v, want %s", got, tc.want)
			}
		})
	}
}

func links(s *testenv.Server) map[string]string {
	m := map[string]string{}
	for _, l := range s.S2SLinks() {
		m[l.Local+" "+l.Remote] = l.Auth
	}
	return m
}

// TestFederationIdleAndDeny: an unused outgoing stream closes after the
// idle timeout and a new one opens when needed; a denied domain is not
// contacted at all.
func TestFederationIdleAndDeny(t *testing.T) {
	local, remote := testenv.StartPair(t, "sqlite", remoteDomain, func(srv *xmpp.Server) {
		srv.S2SIdleTimeout = 200 * time.Millisecond
		srv.S2SDeny = []string{"denied.test"}
	})
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	testenv.Exchange(t, alice, bob)
	deadline := time.Now().Add(testenv.Timeout)
	for len(local.S2SLinks()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle links still open: %v", local.S2SLinks())
		}
		time.Sleep(20 * time.Millisecond)
	}
	testenv.Exchange(t, alice, bob) // a new stream

	alice.SendRaw(t, `<message type="chat" id="d1" to="eve@denied.test"><body>hi</body></message>`)
	el := alice.Expect(t, "bounce", func(el *xmpp.Element) bool { return el.Get("id") == "d1" })
	if el.Get("type") != "error" || !strings.Contains(el.String(), "remote-server-not-found") {
		t.Fatalf("a message to a denied domain came back as %s", el)
	}
	for _, l := range local.S2SLinks() {
		if l.Remote == "denied.test" {
			t.Fatal("a stream to a denied domain was opened")
		}
	}
}

// TestFederationBadInput: what a peer gets for malformed XML, an unknown
// host, and a stanza before STARTTLS; and a direct TLS listener offers
// dialback at once.
func TestFederationBadInput(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	header := func(to string) string {
		return `<stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" xmlns:db="jabber:server:dialback" version="1.0" from="peer.test" to="` + to + `">`
	}
	readAll := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(testenv.Timeout))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for _, tc := range []struct{ name, send, want string }{
		{"malformed", header("localhost") + `<<>`, "not-well-formed"},
		{"unknown host", header("nowhere.test"), "host-unknown"},
		{"stanza before STARTTLS", header("localhost") + `<message from="a@peer.test" to="b@localhost"/>`, "policy-violation"},
		{"client namespace", strings.Replace(header("localhost"), "jabber:server", "jabber:client", 1), "invalid-namespace"},
		{"attribute twice", strings.Replace(header("localhost"), `to="localhost"`, `to="localhost" to="nowhere.test"`, 1), "not-well-formed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.S2S)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.send)
			if out := readAll(c); !strings.Contains(out, tc.want) || !strings.Contains(out, "</stream:stream>") {
				t.Fatalf("got %q, want a %s stream error", out, tc.want)
			}
		})
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeS2SDirectTLS(l)
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, header("localhost"))
	c.SetReadDeadline(time.Now().Add(testenv.Timeout))
	var got strings.Builder
	buf := make([]byte, 2048)
	for !strings.Contains(got.String(), "</stream:features>") {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("direct TLS: %v after %q", err, got.String())
		}
	}
	if !strings.Contains(got.String(), xmpp.NSDialbackFeature) || strings.Contains(got.String(), "starttls") {
		t.Fatalf("direct TLS features %q: want dialback, no STARTTLS", got.String())
	}
	s.Others(t)
}

// TestFederationDirectTLS: a route to a direct TLS listener (XEP-0368)
// carries the stream with TLS from the first byte.
func TestFederationDirectTLS(t *testing.T) {
	la, _ := net.Listen("tcp", "127.0.0.1:0")
	ld, _ := net.Listen("tcp", "127.0.0.1:0")
	lb, _ := net.Listen("tcp", "127.0.0.1:0")
	local := testenv.StartWithS2S(t, "sqlite", la, func(srv *xmpp.Server) {
		srv.S2SRoutes = map[string]string{remoteDomain: lb.Addr().String()}
	})
	go local.ServeS2SDirectTLS(ld)
	remote := testenv.StartWithS2S(t, "sqlite", lb, func(srv *xmpp.Server) {
		srv.Domain = remoteDomain
		srv.S2SRoutes = map[string]string{testenv.Domain: "tls://" + ld.Addr().String()}
	})
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	testenv.Exchange(t, bob, alice)
	testenv.Exchange(t, alice, bob)
}

// TestFederationDialbackFlood: a peer may not have more than a few keys
// verified at once, since each makes us connect out.
func TestFederationDialbackFlood(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close() // accepts nothing: every verification hangs
	routes := map[string]string{}
	for i := 0; i < 20; i++ {
		routes["peer"+strconv.Itoa(i)+".test"] = l.Addr().String()
	}
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) { srv.S2SRoutes = routes })
	conn, err := net.Dial("tcp", s.S2S)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testenv.Timeout))
	header := `<stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" xmlns:db="jabber:server:dialback" version="1.0" to="localhost">`
	io.WriteString(conn, header+`<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>`)
	var pre strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(pre.String(), "<proceed") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("before TLS: %v (%q)", err, pre.String())
		}
		pre.Write(buf[:n])
	}
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	io.WriteString(tc, header)
	for i := 0; i < 20; i++ {
		io.WriteString(tc, `<db:result from="peer`+strconv.Itoa(i)+`.test" to="localhost">key</db:result>`)
	}
	var out strings.Builder
	for !strings.Contains(out.String(), "</stream:stream>") {
		n, err := tc.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(out.String(), "policy-violation") {
		t.Fatalf("20 pending dialback keys answered with %q", out.String())
	}
}

package xmpp

import (
	"bytes"
	"crypto/tls"
	"io"
	"math"
	"net"
	"runtime"
	"testing"
	"unsafe"
)

// Key exchanges a client may offer: classic is OpenSSL 3.0's X25519 and
// P-256; hybrid is Go's default list, X25519MLKEM768 first (nil keeps it).
var (
	classicCurves = []tls.CurveID{tls.X25519, tls.CurveP256}
	hybridCurves  []tls.CurveID
)

// tlsReadBuffersOf is tc's rawInput and hand buffers, to look at.
func tlsReadBuffersOf(t testing.TB, tc *tls.Conn) (rawInput, hand *bytes.Buffer) {
	t.Helper()
	off := tlsReadBufferOffsets
	if !off.ok {
		t.Fatalf("crypto/tls.Conn has no rawInput and hand bytes.Buffer fields in %s: check what it retains after a handshake and update tlsmem.go", runtime.Version())
	}
	base := unsafe.Pointer(tc)
	return (*bytes.Buffer)(unsafe.Add(base, off.rawInput)), (*bytes.Buffer)(unsafe.Add(base, off.hand))
}

// tlsReadBufferCaps is the capacity of tc's rawInput and hand buffers.
func tlsReadBufferCaps(t testing.TB, tc *tls.Conn) (rawInput, hand int) {
	t.Helper()
	r, h := tlsReadBuffersOf(t, tc)
	return r.Cap(), h.Cap()
}

// tlsTestServer is a loopback listener and xmppd's server TLS configuration.
type tlsTestServer struct {
	ln   net.Listener
	conf *tls.Config
}

func newTLSTestServer(t testing.TB) *tlsTestServer {
	t.Helper()
	certPEM, keyPEM, err := SelfSignedCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &tlsTestServer{ln: ln, conf: TLSConfig(cert)}
}

// handshake connects a client offering curves and returns both ends after
// their handshakes. wrap, if set, wraps the server's side of the socket.
func (s *tlsTestServer) handshake(t testing.TB, curves []tls.CurveID, wrap func(net.Conn) net.Conn, clientThen func(*tls.Conn) error) (server, client *tls.Conn) {
	t.Helper()
	type result struct {
		c   *tls.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := net.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			done <- result{err: err}
			return
		}
		c := tls.Client(raw, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, CurvePreferences: curves})
		err = c.Handshake()
		if err == nil && clientThen != nil {
			err = clientThen(c)
		}
		done <- result{c, err}
	}()
	raw, err := s.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	server = tls.Server(raw, s.conf)
	if err := server.Handshake(); err != nil {
		t.Fatal("server handshake:", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal("client:", r.err)
	}
	return server, r.c
}

// exchange sends msg each way over an established pair.
func exchange(t testing.TB, server, client *tls.Conn, msg string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(client, msg)
		errc <- err
	}()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != msg {
		t.Fatalf("server read %q, %v; want %q", buf, err, msg)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := io.WriteString(server, msg)
		errc <- err
	}()
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != msg {
		t.Fatalf("client read %q, %v; want %q", buf, err, msg)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

const streamHeader = `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="localhost" version="1.0">`

// The hybrid ClientHello leaves the server's read buffers grown for good;
// releasing them after the handshake frees them, the connection keeps
// working, and the next read takes a buffer sized for the records that follow.
func TestReleaseHandshakeBuffers(t *testing.T) {
	s := newTLSTestServer(t)
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
		want   tls.CurveID
	}{
		{"classic", classicCurves, tls.X25519},
		{"hybrid", hybridCurves, tls.X25519MLKEM768},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := s.handshake(t, tc.curves, nil, nil)
			defer client.Close()
			defer server.Close()
			if got := server.ConnectionState().CurveID; got != tc.want {
				t.Fatalf("negotiated %v, want %v", got, tc.want)
			}
			raw, hand := tlsReadBufferCaps(t, server)
			t.Logf("after the handshake: rawInput %d bytes, hand %d", raw, hand)
			if tc.want == tls.X25519MLKEM768 && raw+hand < 2048 {
				t.Errorf("crypto/tls kept only %d bytes after a hybrid handshake (rawInput %d, hand %d): does it release them itself now? Then releaseHandshakeBuffers can go", raw+hand, raw, hand)
			}
			if !releaseHandshakeBuffers(server) {
				t.Fatal("releaseHandshakeBuffers did nothing")
			}
			if raw, hand := tlsReadBufferCaps(t, server); raw != 0 || hand != 0 {
				t.Fatalf("after release: rawInput %d bytes, hand %d; want both 0", raw, hand)
			}
			exchange(t, server, client, streamHeader)
			raw, hand = tlsReadBufferCaps(t, server)
			if raw > 1024 || hand != 0 {
				t.Errorf("after a read: rawInput %d bytes, hand %d; want at most 1024 and 0", raw, hand)
			}
		})
	}
}

// gatedConn holds the server's reads back, once it has written its first
// flight, until the client has sent its Finished and application data
// behind it, so that both arrive in the read that ends the handshake.
type gatedConn struct {
	net.Conn
	wrote bool
	gate  chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	g.wrote = true
	return g.Conn.Write(b)
}

func (g *gatedConn) Read(b []byte) (int, error) {
	if g.wrote {
		<-g.gate
	}
	return g.Conn.Read(b)
}

// Bytes the client sent right behind its Finished are in rawInput when the
// handshake returns: releasing keeps them.
func TestReleaseHandshakeBuffersKeepsPipelinedData(t *testing.T) {
	s := newTLSTestServer(t)
	gate := make(chan struct{})
	server, client := s.handshake(t, hybridCurves,
		func(c net.Conn) net.Conn { return &gatedConn{Conn: c, gate: gate} },
		func(c *tls.Conn) error {
			defer close(gate)
			_, err := io.WriteString(c, streamHeader)
			return err
		})
	defer client.Close()
	defer server.Close()
	if raw, _ := tlsReadBuffersOf(t, server); raw.Len() == 0 {
		t.Fatal("nothing behind the client's Finished in rawInput: the test does not test what it says")
	}
	if !releaseHandshakeBuffers(server) {
		t.Fatal("releaseHandshakeBuffers did nothing")
	}
	if raw, _ := tlsReadBuffersOf(t, server); raw.Len() == 0 || raw.Cap() > 512 {
		t.Fatalf("after release, rawInput holds %d bytes in %d; want the pipelined record in a right-sized array", raw.Len(), raw.Cap())
	}
	buf := make([]byte, len(streamHeader))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != streamHeader {
		t.Fatalf("read %q, %v; want %q", buf, err, streamHeader)
	}
	exchange(t, server, client, "<presence/>")
}

// shrinkBuffer keeps what a buffer holds, in an array no larger than that.
func TestShrinkBuffer(t *testing.T) {
	var b bytes.Buffer
	b.Grow(4096)
	b.WriteString("0123456789")
	b.Next(4)
	shrinkBuffer(&b)
	if b.String() != "456789" || b.Cap() > 16 {
		t.Fatalf("got %q in %d bytes", b.String(), b.Cap())
	}
	b.Next(6)
	shrinkBuffer(&b)
	if b.Cap() != 0 || b.Len() != 0 {
		t.Fatalf("emptied: %d bytes, len %d", b.Cap(), b.Len())
	}
	b.WriteString("again")
	if b.String() != "again" {
		t.Fatalf("after shrinking to nothing: %q", b.String())
	}
}

// idleServerConnHeap opens n connections from clients offering curves and
// returns the live heap, in bytes, that each server end keeps once it has
// read a stream header and its client has gone: what an idle session's TLS
// costs the server.
func idleServerConnHeap(t *testing.T, s *tlsTestServer, n int, curves []tls.CurveID, release bool) float64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // and the sync.Pools' victims
	runtime.ReadMemStats(&before)
	servers := make([]*tls.Conn, n)
	for i := range servers {
		server, client := s.handshake(t, curves, nil, nil)
		if release && !releaseHandshakeBuffers(server) {
			t.Fatal("releaseHandshakeBuffers did nothing")
		}
		exchange(t, server, client, streamHeader)
		client.Close()
		servers[i] = server
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, c := range servers {
		c.NetConn().Close()
	}
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// With the buffers released, a client offering the hybrid key exchange costs
// the server no more heap per idle connection than one offering X25519
// alone; without, it costs about 2.7 KB more.
func TestIdleTLSConnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,200 TLS connections")
	}
	s := newTLSTestServer(t)
	const n = 200
	// The least of two rounds: whatever else allocates meanwhile (an
	// earlier test's server winding down) only ever adds.
	classic, hybrid, kept := math.Inf(1), math.Inf(1), math.Inf(1)
	for range 2 {
		classic = min(classic, idleServerConnHeap(t, s, n, classicCurves, true))
		hybrid = min(hybrid, idleServerConnHeap(t, s, n, hybridCurves, true))
		kept = min(kept, idleServerConnHeap(t, s, n, hybridCurves, false))
	}
	t.Logf("heap per idle server connection: classic %.0f bytes, hybrid %.0f, hybrid without release %.0f", classic, hybrid, kept)
	if hybrid-classic > 512 {
		t.Errorf("a hybrid client's connection keeps %.0f bytes more than a classic one's; want at most 512", hybrid-classic)
	}
	if kept-hybrid < 2048 {
		t.Errorf("releasing saves only %.0f bytes per hybrid connection; want at least 2048 (does crypto/tls release them itself now?)", kept-hybrid)
	}
}

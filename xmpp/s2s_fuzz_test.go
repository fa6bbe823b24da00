package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// fuzzConn is an incoming federation connection whose peer sends in and
// then nothing more; what the server writes is kept.
type fuzzConn struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *fuzzConn) Close() error        { return nil }
func (c *fuzzConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5269} }
func (c *fuzzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzDialback fuzzes an incoming federation stream after TLS: its header,
// dialback keys and verifications (XEP-0220), and stanzas. The peer cannot
// prove a domain (its only allowed domain, peer.test, routes to a closed
// loopback port, so every verification fails), so whatever it sends, no
// domain pair is ever authorized; and everything the server writes back,
// including the attributes it echoes, is well-formed XML.
func FuzzDialback(f *testing.F) {
	const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='example.com' from='peer.test' version='1.0'>`
	for _, seed := range []string{
		header + `<db:result from='peer.test' to='example.com'>abcdef</db:result>`,
		header + `<db:verify from='peer.test' to='example.com' id='x&apos;&lt;y'>key</db:verify>`,
		header + `<db:verify from='a&quot;b' to='example.com' id='1'>k</db:verify><message from='x@peer.test' to='a@example.com'><body>hi</body></message>`,
		header + `<message from='x@peer.test' to='a@example.com'/>`,
		header + `<db:result from='other.test' to='example.com'>k</db:result>`,
		header + `<db:result from='peer.test' to='elsewhere'>k</db:result>`,
		header + `<stream:error/>`,
		`<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='example.com'>`,
		header + `<db:verify/>`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PingInterval: -1,
		S2SAllow: []string{"peer.test"}, S2SRoutes: map[string]string{"peer.test": "127.0.0.1:1"}, S2SConnectTimeout: 2 * time.Second}
	s.init()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &fuzzConn{in: bytes.NewReader(in)}
		c := &s2sIn{srv: s, raw: conn, remote: "127.0.0.2:40000", authorized: make(map[string]bool), addr: "127.0.0.2", w: &s2sWriter{conn: conn}}
		ctx, cancel := context.WithCancel(s.ctx)
		c.ctx = ctx
		c.serve(conn, true)
		cancel()
		c.pending.Wait()
		if len(c.authorized) != 0 {
			t.Fatalf("authorized %v without a valid key", c.authorized)
		}
		out := append(conn.out.Bytes(), "</stream:stream>"...)
		d := xml.NewDecoder(bytes.NewReader(out))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("the server wrote XML that is not well-formed (%v):\n%s", err, out)
			}
		}
	})
}

package xmpp

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// ServeS2S accepts connections from other servers on l (port 5269): STARTTLS
// is required, then the peer proves each domain it sends from with Server
// Dialback (XEP-0220). It returns when l is closed or the server shuts down.
func (s *Server) ServeS2S(l net.Listener) error { return s.serve(l, s2sPlain) }

// ServeS2SDirectTLS is ServeS2S for connections that start with TLS
// (XEP-0368, port 5270).
func (s *Server) ServeS2SDirectTLS(l net.Listener) error { return s.serve(l, s2sDirectTLS) }

// s2sIn is one stream another server opened to us.
type s2sIn struct {
	srv    *Server
	raw    net.Conn
	remote string
	w      *s2sWriter
	mu     sync.Mutex
	// authorized holds the "from to" domain pairs the peer has proved with
	// dialback on this stream.
	authorized map[string]bool
	pending    sync.WaitGroup
	verifying  atomic.Int32 // dialback keys being verified
	ctx        context.Context
	// addr holds an unauthenticated slot of the peer's address until the
	// peer has proved a domain.
	addr    string
	release sync.Once
	// deadline is when the peer must have authenticated.
	deadline time.Time
}

// authenticated gives back the address's unauthenticated slot: a peer that
// proved a domain keeps its stream without counting against its address.
func (c *s2sIn) authenticated() {
	c.release.Do(func() { c.srv.admission.release(c.addr) })
}

// errTLSFailed is a TLS handshake that failed after <proceed/>.
var errTLSFailed = errors.New("xmpp: TLS handshake failed")

// maxPendingDialback bounds the keys one stream has being verified at once.
const maxPendingDialback = 8

// handleS2S serves a stream from another server on a connection that was
// admitted: it holds one of addr's unauthenticated slots.
func (s *Server) handleS2S(raw net.Conn, direct bool, addr string) {
	defer s.caught("incoming federation stream", raw.RemoteAddr().String(), nil)
	defer raw.Close()
	c := &s2sIn{srv: s, raw: raw, remote: raw.RemoteAddr().String(), authorized: make(map[string]bool), addr: addr}
	s.s2sInStreams.Add(1)
	defer s.s2sInStreams.Add(-1)
	defer c.authenticated()
	var conn net.Conn = raw
	deadline := time.Now().Add(s.cur().NegotiationTimeout)
	c.deadline = deadline
	raw.SetDeadline(s.handshakeDeadline(deadline))
	stop := context.AfterFunc(s.ctx, func() { raw.SetReadDeadline(time.Now()) })
	defer stop()
	if direct {
		tc := tls.Server(raw, s.s2sServerTLS())
		if err := tc.Handshake(); err != nil {
			return
		}
		raw.SetDeadline(deadline)
		conn = tc
	}
	c.w = &s2sWriter{conn: conn}
	var cancel context.CancelFunc
	c.ctx, cancel = context.WithCancel(s.ctx)
	err := c.serve(conn, direct)
	cancel() // verifications for this stream are moot now
	c.pending.Wait()
	if errors.Is(err, errTLSFailed) {
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		se, ok := streamErrorFor(err)
		if s.ctx.Err() != nil {
			se, ok = StreamError{Condition: SystemShutdown}, true
		}
		if ok {
			s.log.Info("s2s stream error", "remote", c.remote, "condition", se.Condition, "text", se.Text)
			c.w.write(append(se.Append(nil), "</stream:stream>"...))
			return
		}
	}
	c.w.write([]byte("</stream:stream>"))
}

// serve runs the stream: its header and features, STARTTLS, then dialback
// and stanzas, until the peer ends it.
func (c *s2sIn) serve(conn net.Conn, secure bool) error {
	s := c.srv
	wroteHeader := false
	saslDone := false
	defer func() {
		if !wroteHeader {
			c.w.write(appendS2SHeader(nil, s.Domain, "", randomID()))
		}
	}()
	for {
		set := s.cur()
		g := newGuard(conn, set.MaxStanzaSize, newRateLimiter(set.ReadRate, set.ReadBurst))
		d := xml.NewDecoder(g)
		hdr, err := readHeader(d)
		if err != nil {
			return err
		}
		if ns := attr(hdr, "xmlns"); ns != NSServer {
			return StreamError{Condition: InvalidNamespace, Text: "a server-to-server stream is in " + NSServer}
		}
		to, from, id := attr(hdr, "to"), attr(hdr, "from"), randomID()
		b := appendS2SHeader(nil, to, from, id)
		wroteHeader = true
		if !s.serves(to) {
			c.w.write(b)
			return StreamError{Condition: HostUnknown, Text: "this server does not serve " + to}
		}
		if from != "" && !s.remoteAllowed(from) {
			c.w.write(b)
			return StreamError{Condition: PolicyViolation, Text: "federation with " + from + " is not allowed"}
		}
		b = append(b, "<stream:features>"...)
		external := false
		if secure {
			// A certificate valid for the peer's domain authenticates it
			// (RFC 6120 §13.7.1.2); otherwise dialback must.
			if tc, ok := conn.(*tls.Conn); ok && !saslDone && s.certValidFor(tc.ConnectionState().PeerCertificates, from) {
				external = true
				b = append(b, `<mechanisms xmlns="`+NSSASL+`"><mechanism>EXTERNAL</mechanism></mechanisms>`...)
			}
			b = append(b, `<dialback xmlns="`+NSDialbackFeature+`"><errors/></dialback>`...)
		} else {
			b = append(b, `<starttls xmlns="`+NSTLS+`"><required/></starttls>`...)
		}
		b = append(b, "</stream:features>"...)
		if err := c.w.write(b); err != nil {
			return err
		}
		for {
			el, err := NextElement(d)
			if err != nil {
				return err
			}
			if !secure {
				if el.Space != NSTLS || el.Local != "starttls" {
					return StreamError{Condition: PolicyViolation, Text: "STARTTLS is required"}
				}
				c.w.write([]byte(`<proceed xmlns="` + NSTLS + `"/>`))
				tc := tls.Server(conn, s.s2sServerTLS())
				c.raw.SetDeadline(s.handshakeDeadline(c.deadline))
				if err := tc.Handshake(); err != nil {
					// Neither plain XML nor TLS now: close without a
					// stream error (RFC 6120 §5.4.3.2).
					return errTLSFailed
				}
				c.raw.SetDeadline(c.deadline)
				conn, secure = tc, true
				c.w = &s2sWriter{conn: tc}
				break // a new stream on the encrypted connection
			}
			if external && el.Space == NSSASL && el.Local == "auth" {
				ok, err := c.external(el, from, to)
				if err != nil {
					return err
				}
				if ok {
					saslDone = true
					break // the peer restarts the stream
				}
				external = false
				continue
			}
			if err := c.handle(el, id); err != nil {
				return err
			}
		}
	}
}

// external answers SASL EXTERNAL (RFC 6120 §6.4, XEP-0178 for servers):
// the authorization identity, if any, must be the domain the certificate
// was found valid for.
func (c *s2sIn) external(el *Element, from, to string) (bool, error) {
	fail := func(cond string) (bool, error) {
		return false, c.w.write([]byte(`<failure xmlns="` + NSSASL + `"><` + cond + `/></failure>`))
	}
	if el.Get("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism")
	}
	authzid := ""
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return fail("incorrect-encoding")
		}
		authzid = string(b)
	}
	if authzid != "" && authzid != from {
		return fail("invalid-authzid")
	}
	c.mu.Lock()
	c.authorized[pairKey(from, to)] = true
	c.mu.Unlock()
	c.authenticated()
	c.raw.SetDeadline(time.Time{})
	c.srv.log.Info("s2s authenticated", "from", from, "to", to, "auth", "external")
	return true, c.w.write([]byte(`<success xmlns="` + NSSASL + `"/>`))
}

// handle acts on one element of an encrypted stream.
func (c *s2sIn) handle(el *Element, streamID string) error {
	s := c.srv
	switch {
	case el.Space == NSDialback && el.Local == "result" && el.Get("type") == "":
		from, to := el.Get("from"), el.Get("to")
		if !s.serves(to) {
			return StreamError{Condition: HostUnknown}
		}
		if !s.remoteAllowed(from) {
			return StreamError{Condition: PolicyViolation, Text: "federation with " + from + " is not allowed"}
		}
		if c.verifying.Add(1) > maxPendingDialback {
			// Each key makes us connect to the domain it names: a peer may
			// not make us dial out without bound.
			return StreamError{Condition: PolicyViolation, Text: "too many dialback requests pending"}
		}
		c.raw.SetDeadline(time.Time{})
		c.pending.Add(1)
		go func() {
			defer c.pending.Done()
			defer c.verifying.Add(-1)
			ctx, cancel := context.WithTimeout(c.ctx, s.cur().S2SConnectTimeout)
			defer cancel()
			ok, err := s.outgoingFrom(to, from, "dialback "+c.addr).verify(ctx, streamID, el.Text())
			typ := "invalid"
			if ok {
				typ = "valid"
				c.mu.Lock()
				c.authorized[pairKey(from, to)] = true
				c.mu.Unlock()
				c.authenticated()
			}
			s.log.Info("s2s dialback", "from", from, "to", to, "result", typ, "err", err)
			b := []byte(`<db:result`)
			b = appendAttrs(b, "from", to, "to", from, "type", typ)
			c.w.write(append(b, "/>"...))
		}()
	case el.Space == NSDialback && el.Local == "verify":
		// We are the authority for 'to': was the key ours?
		from, to, id := el.Get("from"), el.Get("to"), el.Get("id")
		typ := "invalid"
		if s.serves(to) && hmac.Equal([]byte(el.Text()), []byte(s.dialbackKey(from, to, id))) {
			typ = "valid"
		}
		b := []byte(`<db:verify`)
		b = appendAttrs(b, "from", to, "to", from, "id", id, "type", typ)
		return c.w.write(append(b, "/>"...))
	case el.Space == NSServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq"):
		return c.stanza(el)
	case el.Space == NSStream && el.Local == "error":
		return io.EOF
	default:
		return StreamError{Condition: UnsupportedStanza}
	}
	return nil
}

// stanza routes a stanza from the peer, which may send only from the
// domains it has proved, to ours (RFC 6120 §8.1.2.2, §13.7.1.2).
func (c *s2sIn) stanza(el *Element) error {
	if c.srv.ctx.Err() != nil {
		return StreamError{Condition: SystemShutdown} // what was read after shutdown began
	}
	fj, err1 := jid.Parse(el.Get("from"))
	tj, err2 := jid.Parse(el.Get("to"))
	if err1 != nil || err2 != nil {
		return StreamError{Condition: ImproperAddressing, Text: "a stanza between servers needs a valid from and to"}
	}
	c.mu.Lock()
	ok := c.authorized[pairKey(fj.Domainpart(), tj.Domainpart())]
	c.mu.Unlock()
	if !ok {
		if !c.srv.serves(tj.Domainpart()) {
			return StreamError{Condition: HostUnknown}
		}
		return StreamError{Condition: InvalidFrom, Text: fj.Domainpart() + " has not been authenticated on this stream"}
	}
	// The lists may have changed since the stream was set up
	// (Reconfigure): a domain denied now is cut off now.
	if !c.srv.remoteAllowed(fj.Domainpart()) {
		return StreamError{Condition: PolicyViolation, Text: "federation with " + fj.Domainpart() + " is not allowed"}
	}
	toClientNamespace(el)
	m := c.srv.Metrics
	k, stanza := kindOf(el.Local)
	stanza = stanza && m != nil
	var start time.Time
	if stanza {
		m.StanzaIn(k)
		start = time.Now()
	}
	c.srv.router.Route(c.srv.ctx, el, nil)
	if stanza {
		m.Routed(k, time.Since(start))
	}
	return nil
}

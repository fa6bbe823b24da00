package xmpp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server-to-server streams (RFC 6120 with the jabber:server namespace):
// s2s_in.go accepts them, s2s_out.go opens them; both authenticate the
// peer's domain with Server Dialback (XEP-0220) after STARTTLS.

// Namespaces of server dialback.
const (
	NSDialback        = "jabber:server:dialback"
	NSDialbackFeature = "urn:xmpp:features:dialback"
)

// Defaults for federation.
const (
	DefaultS2SIdleTimeout    = 10 * time.Minute
	DefaultS2SConnectTimeout = 30 * time.Second
)

// dialbackKey is XEP-0185's key: HMAC-SHA256 keyed with the SHA-256 of the
// secret, over "receiving originating streamID", in hex.
func (s *Server) dialbackKey(receiving, originating, streamID string) string {
	k := sha256.Sum256(s.dialbackSecret)
	m := hmac.New(sha256.New, k[:])
	io.WriteString(m, receiving+" "+originating+" "+streamID)
	return hex.EncodeToString(m.Sum(nil))
}

// initS2S prepares federation; part of init.
func (s *Server) initS2S() {
	s.dialbackSecret = s.DialbackSecret
	if len(s.dialbackSecret) == 0 {
		s.dialbackSecret = make([]byte, 32)
		rand.Read(s.dialbackSecret)
	}
	s.s2sDials.init(s)
	s.outgoingConns = make(map[string]*s2sOut)
}

// certValidFor reports whether a peer's certificate chain is valid for
// domain under S2SRootCAs (RFC 6120 §13.7.1.2, RFC 6125). Server
// certificates are accepted from a connecting server too: most carry only
// the serverAuth usage.
func (s *Server) certValidFor(chain []*x509.Certificate, domain string) bool {
	if len(chain) == 0 || domain == "" {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       domain,
		Roots:         s.S2SRootCAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// s2sServerTLS is the TLS configuration for incoming server streams: the
// peer is asked for its certificate, which SASL EXTERNAL checks.
func (s *Server) s2sServerTLS() *tls.Config {
	c := s.TLSConfig.Clone()
	c.ClientAuth = tls.RequestClientCert
	return c
}

// An S2SLink is an outgoing server-to-server stream.
type S2SLink struct {
	Local, Remote string
	// Auth is how the remote server accepted us: "external" (SASL EXTERNAL
	// with our certificate), "dialback", or "" while it is being set up.
	Auth string
}

// S2SLinks lists the outgoing server-to-server streams.
func (s *Server) S2SLinks() []S2SLink {
	s.s2sMu.Lock()
	defer s.s2sMu.Unlock()
	var out []S2SLink
	for _, o := range s.outgoingConns {
		o.mu.Lock()
		out = append(out, S2SLink{Local: o.local, Remote: o.remote, Auth: o.auth})
		o.mu.Unlock()
	}
	return out
}

// serves reports whether domain is ours: the server's or a component's.
func (s *Server) serves(domain string) bool {
	return domain == s.Domain || s.component(domain) != nil
}

// remoteAllowed applies the federation allow and deny lists.
func (s *Server) remoteAllowed(domain string) bool {
	if s.S2SDisabled {
		return false
	}
	set := s.cur()
	for _, d := range set.S2SDeny {
		if d == domain {
			return false
		}
	}
	if len(set.S2SAllow) == 0 {
		return true
	}
	for _, d := range set.S2SAllow {
		if d == domain {
			return true
		}
	}
	return false
}

// An s2sAddr is where to reach a remote server, and whether TLS starts at
// once (XEP-0368) rather than with STARTTLS.
type s2sAddr struct {
	addr   string
	direct bool
}

// s2sAddrs are the addresses to try for a remote domain: a static route
// ("host:port", or "tls://host:port" for direct TLS), else the DNS SRV
// records _xmpps-server._tcp (direct TLS) then _xmpp-server._tcp, else the
// domain itself on 5269 (RFC 6120 §3.2, XEP-0368). The lookups end with
// ctx, the attempt's connect timeout.
func (s *Server) s2sAddrs(ctx context.Context, domain string) []s2sAddr {
	if a, ok := s.cur().S2SRoutes[domain]; ok {
		if rest, ok := strings.CutPrefix(a, "tls://"); ok {
			return []s2sAddr{{rest, true}}
		}
		return []s2sAddr{{a, false}}
	}
	var out []s2sAddr
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := net.DefaultResolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		for _, r := range srvs {
			if r.Target == "." {
				continue // no service of this kind (RFC 2782)
			}
			out = append(out, s2sAddr{net.JoinHostPort(r.Target, strconv.Itoa(int(r.Port))), svc.direct})
		}
	}
	if len(out) == 0 {
		out = append(out, s2sAddr{net.JoinHostPort(domain, "5269"), false})
	}
	return out
}

// appendS2SHeader appends a server-to-server stream header.
func appendS2SHeader(b []byte, from, to, id string) []byte {
	b = append(b, `<?xml version="1.0"?><stream:stream xmlns="`+NSServer+`" xmlns:stream="`+NSStream+`" xmlns:db="`+NSDialback+`" version="1.0"`...)
	return append(appendAttrs(b, "from", from, "to", to, "id", id), '>')
}

// readHeader reads the peer's stream header.
func readHeader(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != NSStream || t.Name.Local != "stream" {
				return t, StreamError{Condition: InvalidNamespace}
			}
			return t, checkStartTag(t)
		case xml.ProcInst, xml.CharData:
		default:
			return xml.StartElement{}, StreamError{Condition: NotWellFormed}
		}
	}
}

func attr(start xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// NextElement reads the next top-level element of a stream from d; io.EOF
// when the peer closed the stream.
func NextElement(d *xml.Decoder) (*Element, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return ReadElement(d, t)
		case xml.EndElement:
			return nil, io.EOF
		}
	}
}

// s2sWriter serialises writes on a server-to-server connection.
type s2sWriter struct {
	mu   sync.Mutex
	conn net.Conn
}

func (w *s2sWriter) write(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := w.conn.Write(b)
	return err
}

var errDialbackFailed = errors.New("xmpp: the remote server did not accept our dialback key")

// s2sError describes why a remote domain cannot be reached, for bounces.
type s2sError struct {
	cond Condition
	err  error
}

func (e *s2sError) Error() string { return fmt.Sprintf("%s: %v", e.cond, e.err) }
func (e *s2sError) Unwrap() error { return e.err }

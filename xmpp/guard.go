package xmpp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// errRestricted is returned by the guard when the peer sends XML that RFC 6120
// §11.1 forbids on a stream: comments, processing instructions, DTDs and
// entity references other than the five predefined ones.
var errRestricted = errors.New("xmpp: restricted XML")

// errTooBig is returned when one top-level element exceeds the size limit.
var errTooBig = errors.New("xmpp: stanza exceeds the size limit")

// guard sits between the (TLS-decrypted) connection and the XML decoder. It
// scans every byte once with a tiny lexer that knows just enough XML to find
// the restricted constructs, to measure each top-level element, and to name
// it, so that violations are reported as typed errors before the decoder
// buffers anything large. It also limits the read rate.
type guard struct {
	net.Conn
	lex   lexer
	rate  *rateLimiter
	err   error // violation found in the middle of the last chunk
	wrote bool  // something was written on this connection (a stream header)
	mu    sync.Mutex
}

func newGuard(c net.Conn, maxStanza int, rate *rateLimiter) *guard {
	return &guard{Conn: c, lex: lexer{limit: maxStanza}, rate: rate}
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	g.rate.wait()
	n, err := g.Conn.Read(p)
	g.rate.took(n)
	if k, verr := g.lex.scan(p[:n]); verr != nil {
		// Hand over what came before the violation; report it next time.
		g.err = verr
		if k == 0 {
			return 0, verr
		}
		return k, nil
	}
	return n, err
}

func (g *guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.wrote = true
	g.mu.Unlock()
	return g.Conn.Write(p)
}

func (g *guard) hasWritten() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wrote
}

// ConnectionState lets mellium and SASL channel binding see the TLS state
// through the guard.
func (g *guard) ConnectionState() tls.ConnectionState {
	if tc, ok := g.Conn.(*tls.Conn); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// lexer states.
const (
	lxText     = iota
	lxLT       // after '<'
	lxName     // start tag name
	lxAttrs    // inside a start tag, outside values
	lxValue    // inside an attribute value
	lxEndTag   // inside an end tag
	lxBang     // after "<!"
	lxCDATA    // inside <![CDATA[ ... ]]>
	lxPITarget // after "<?"
	lxPI       // inside the XML declaration
	lxEntity   // after '&'
)

// lexer is the guard's byte-at-a-time scanner. It does not validate XML (the
// decoder does); it only has to be right about the places where restricted
// constructs can start, and about element depth.
type lexer struct {
	state     int
	ret       int // state to return to after an entity
	depth     int
	size      int // bytes of the current top-level element (or stream header)
	limit     int
	quote     byte
	selfClose bool
	name      [32]byte
	nameLen   int
	ent       [8]byte
	entLen    int
	match     int // progress through "]]>" or "?>"
	top       string
}

// topName is the local name of the last top-level element started.
func (l *lexer) topName() string { return l.top }

func (l *lexer) scan(p []byte) (int, error) {
	for i, c := range p {
		l.size++
		if l.limit > 0 && l.size > l.limit {
			return i, errTooBig
		}
		switch l.state {
		case lxText:
			switch c {
			case '<':
				l.state = lxLT
			case '&':
				l.ret, l.state, l.entLen = lxText, lxEntity, 0
			}
		case lxLT:
			switch c {
			case '/':
				l.state = lxEndTag
			case '!':
				l.state = lxBang
			case '?':
				l.state, l.nameLen = lxPITarget, 0
			default:
				l.state, l.selfClose = lxName, false
				l.name[0], l.nameLen = c, 1
			}
		case lxName:
			switch {
			case c == '>' || c == '/' || isSpace(c):
				l.state = lxAttrs
				if c == '>' {
					l.endStartTag()
				} else if c == '/' {
					l.selfClose = true
				}
			case l.nameLen < len(l.name):
				l.name[l.nameLen] = c
				l.nameLen++
			}
		case lxAttrs:
			switch c {
			case '"', '\'':
				l.state, l.quote = lxValue, c
			case '/':
				l.selfClose = true
			case '>':
				l.endStartTag()
			default:
				l.selfClose = false
			}
		case lxValue:
			switch c {
			case l.quote:
				l.state = lxAttrs
			case '&':
				l.ret, l.state, l.entLen = lxValue, lxEntity, 0
			}
		case lxEndTag:
			if c == '>' {
				l.state = lxText
				l.depth--
				if l.depth <= 1 {
					l.size = 0
				}
			}
		case lxBang:
			if c != '[' || l.depth < 2 {
				return i, fmt.Errorf("%w: comment or DTD", errRestricted)
			}
			l.state, l.match = lxCDATA, 0
		case lxCDATA:
			switch {
			case c == ']' && l.match < 2:
				l.match++
			case c == '>' && l.match == 2:
				l.state = lxText
			case c == ']':
			default:
				l.match = 0
			}
		case lxPITarget:
			switch {
			case isSpace(c) || c == '?':
				// Only the XML declaration, and only between elements of the
				// stream (it precedes a stream header, also on restarts).
				if string(l.name[:l.nameLen]) != "xml" || l.depth > 1 {
					return i, fmt.Errorf("%w: processing instruction", errRestricted)
				}
				l.state, l.match = lxPI, 0
				if c == '?' {
					l.match = 1
				}
			case l.nameLen < len(l.name):
				l.name[l.nameLen] = c
				l.nameLen++
			default:
				return i, fmt.Errorf("%w: processing instruction", errRestricted)
			}
		case lxPI:
			switch {
			case c == '?':
				l.match = 1
			case c == '>' && l.match == 1:
				l.state = lxText
			default:
				l.match = 0
			}
		case lxEntity:
			switch {
			case c == ';':
				if !predefinedEntity(l.ent[:l.entLen]) {
					return i, fmt.Errorf("%w: entity reference", errRestricted)
				}
				l.state = l.ret
			case l.entLen < len(l.ent):
				l.ent[l.entLen] = c
				l.entLen++
			default:
				// Too long for any entity we accept; the decoder reports it.
				l.state = l.ret
			}
		}
	}
	return len(p), nil
}

func (l *lexer) endStartTag() {
	l.state = lxText
	name := string(l.name[:l.nameLen])
	if isStreamHeader(name) {
		// A stream header (also a restart after STARTTLS or SASL): depth 1.
		l.depth, l.size = 1, 0
		return
	}
	if l.depth == 1 {
		l.top = localName(name)
	}
	if !l.selfClose {
		l.depth++
	} else if l.depth <= 1 {
		l.size = 0
	}
}

func isStreamHeader(name string) bool {
	return name == "stream:stream" || name == "stream"
}

func localName(qname string) string {
	for i := len(qname) - 1; i >= 0; i-- {
		if qname[i] == ':' {
			return qname[i+1:]
		}
	}
	return qname
}

func predefinedEntity(name []byte) bool {
	if len(name) > 0 && name[0] == '#' {
		return true
	}
	switch string(name) {
	case "lt", "gt", "amp", "quot", "apos":
		return true
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// rateLimiter is a token bucket over bytes read from one connection. A zero
// rate means no limit.
type rateLimiter struct {
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newRateLimiter(bytesPerSec, burst int) *rateLimiter {
	if bytesPerSec <= 0 {
		return nil
	}
	if burst < bytesPerSec {
		burst = bytesPerSec
	}
	return &rateLimiter{rate: float64(bytesPerSec), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// wait blocks until the bucket is no longer in debt; reading nothing in the
// meantime lets TCP push back on the sender.
func (r *rateLimiter) wait() {
	if r == nil {
		return
	}
	now := time.Now()
	r.tokens += now.Sub(r.last).Seconds() * r.rate
	if r.tokens > r.burst {
		r.tokens = r.burst
	}
	r.last = now
	if r.tokens < 0 {
		time.Sleep(time.Duration(-r.tokens / r.rate * float64(time.Second)))
	}
}

func (r *rateLimiter) took(n int) {
	if r != nil {
		r.tokens -= float64(n)
	}
}

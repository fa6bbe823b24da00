package xmpp

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// errRestricted is returned by the guard when the peer sends XML that RFC 6120
// §11.1 forbids on a stream: comments, processing instructions, DTDs and
// entity references other than the five predefined ones.
var errRestricted = errors.New("xmpp: restricted XML")

// errTooBig is returned when one top-level element exceeds the size limit.
var errTooBig = errors.New("xmpp: stanza exceeds the size limit")

// guard sits between the (TLS-decrypted) connection and the XML parsers. It
// scans every byte once with a tiny lexer that knows just enough XML to find
// the restricted constructs, to measure each top-level element, and to name
// it, so that violations are reported as typed errors before anything large
// is buffered. It also limits the read rate.
//
// During negotiation it is an io.ByteReader for encoding/xml (so the decoder
// keeps no buffer of its own and reads nothing ahead); once the session runs,
// next frames whole stanzas for parseStanza. Both read from one small buffer.
type guard struct {
	net.Conn
	lex  lexer
	rate *rateLimiter
	// buf[r:w] has been read and neither scanned nor consumed.
	buf  []byte
	r, w int
	// acc holds the start of a stanza that did not fit in one read.
	acc      []byte
	accTaken bool // acc was handed out by next and is free again
	err      error
	// lastRead is when bytes last arrived (unix nanoseconds); whitespace
	// keepalives count.
	lastRead atomic.Int64
	wrote    bool // something was written on this connection
	// headersOut is how many of the peer's stream headers (lex.headers) our
	// last stream header answered.
	headersOut int
	closed     bool // the stream was closed: nothing more is written
	// owner is the client connection being negotiated, for stream features
	// that need it (stream management's resumption); nil elsewhere.
	owner *conn
	mu    sync.Mutex
}

// guardBufSize is the read buffer of one connection. Stanzas larger than it
// take several reads from TLS's own record buffer, which costs a copy, not a
// system call; an idle session should hold as little as it can.
const guardBufSize = 1024

func newGuard(c net.Conn, maxStanza int, rate *rateLimiter) *guard {
	return &guard{Conn: c, lex: lexer{limit: maxStanza}, rate: rate}
}

// fill reads more bytes into the buffer, once the read rate allows it. The
// buffer must have been consumed.
func (g *guard) fill() error {
	if g.buf == nil {
		g.buf = make([]byte, guardBufSize)
	}
	g.r, g.w = 0, 0
	for {
		g.rate.wait()
		n, err := g.Conn.Read(g.buf)
		g.rate.took(n)
		if n > 0 {
			g.w = n
			g.lastRead.Store(time.Now().UnixNano())
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadByte is how encoding/xml reads during negotiation. Whitespace between
// top-level elements is dropped here: RFC 6120 §11.7 allows it anywhere
// between elements (clients send newlines and keepalives), but mellium's
// feature negotiation takes the token after each element to be the next
// element and fails on character data.
func (g *guard) ReadByte() (byte, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if g.r == g.w {
			if err := g.fill(); err != nil {
				return 0, err
			}
		}
		g.lex.attrCheck = true
		if _, err := g.lex.scan(g.buf[g.r : g.r+1]); err != nil {
			g.err = err
			return 0, err
		}
		c := g.buf[g.r]
		g.r++
		if isSpace(c) && g.lex.between() {
			continue
		}
		return c, nil
	}
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.r == g.w {
		if err := g.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.buf[g.r:g.w])
	k, err := g.lex.scan(p[:n])
	g.r += k
	if err != nil {
		// Hand over what came before the violation; report it next time.
		g.err = err
		if k == 0 {
			return 0, err
		}
	}
	return k, nil
}

// next returns the next top-level element of the stream, without what came
// before it between elements (whitespace keepalives); io.EOF when the client
// closed its stream. The bytes are valid until the next call.
func (g *guard) next() ([]byte, error) {
	if g.err != nil {
		return nil, g.err
	}
	g.lex.attrCheck = false // parseStanza checks, with namespaces
	if g.accTaken {
		g.accTaken = false
		g.acc = g.acc[:0]
		if cap(g.acc) > 4*guardBufSize {
			g.acc = nil // a large stanza's buffer is not kept
		}
	}
	start := g.r
	for {
		if g.r < g.w {
			k, err := g.lex.scanStanza(g.buf[g.r:g.w])
			if g.lex.topStart >= 0 {
				// An element began here; what came before it was between
				// elements.
				start, g.acc = g.r+g.lex.topStart, g.acc[:0]
			}
			g.r += k
			if err != nil {
				g.err = err
				return nil, err
			}
			if g.lex.complete {
				el := g.buf[start:g.r]
				if len(g.acc) > 0 {
					g.acc = append(g.acc, el...)
					el, g.accTaken = g.acc, true
				}
				return el, nil
			}
			if g.streamClosed() {
				return nil, io.EOF
			}
			if g.lex.between() {
				// Only keepalives so far: nothing to keep.
				start, g.acc = g.r, g.acc[:0]
			}
		}
		g.acc = append(g.acc, g.buf[start:g.r]...)
		if err := g.fill(); err != nil {
			if err == io.EOF {
				// The connection ended without the stream's end: io.EOF
				// stays the clean close's, for stream management to tell
				// a lost connection from a client that is done.
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		start = 0
	}
}

// violationAhead reports a violation in what has been read and not yet
// consumed, or one already found: when negotiation fails on an element,
// a restricted construct in it is the better reason to give.
func (g *guard) violationAhead() error {
	if g.err != nil {
		return g.err
	}
	l := g.lex
	l.open = slices.Clone(l.open)
	_, err := l.scan(g.buf[g.r:g.w])
	return err
}

// streamClosed reports whether the peer has sent its closing stream tag.
func (g *guard) streamClosed() bool { return g.lex.depth <= 0 && g.lex.opened }

func (g *guard) Write(p []byte) (int, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return 0, net.ErrClosed
	}
	g.wrote = true
	if bytes.HasPrefix(p, xmlDecl) {
		g.headersOut = g.lex.headers
	}
	g.mu.Unlock()
	return g.Conn.Write(p)
}

// xmlDecl starts every stream header we write (mellium's and ours).
var xmlDecl = []byte("<?xml")

// finalWrite writes the end of the stream (a stream error and the closing
// tag) and refuses every write after it, so that nothing that a negotiation
// step still had buffered follows the end; false if the stream was already
// closed.
func (g *guard) finalWrite(p []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed, g.wrote = true, true
	g.Conn.Write(p)
	return true
}

// closeWrite refuses every further write.
func (g *guard) closeWrite() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// needHeader reports whether a stream error must be preceded by a stream
// header of ours (RFC 6120 §4.9.1.2): nothing was written on this layer
// yet, or the peer has (re)started its stream and we have not answered.
func (g *guard) needHeader() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.wrote || g.lex.headers > g.headersOut
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
	opened    bool // a stream header has been seen
	headers   int  // how many stream headers have been seen (restarts)
	// hash is of the tag name being read; open holds the hashes of the
	// elements open inside the current stanza, to catch a mismatched end
	// tag at once rather than wait for an end that never comes.
	hash uint32
	open []uint32
	// complete is set when a top-level element has ended; scanStanza stops
	// there.
	endName  bool // the end tag's name has been read
	complete bool
	stop     bool
	// topStart is where in the bytes of the last scan a top-level element
	// began, or -1.
	topStart int
	// attrCheck makes the lexer reject an attribute name given twice in a
	// start tag, literally. It is on while mellium's decoder reads (stream
	// headers, STARTTLS, SASL, bind), which, like encoding/xml, accepts
	// duplicates; stanzas are checked by their parser, with namespaces.
	attrCheck bool
	inAttr    bool
	ahash     uint32
	attrs     [16]uint32 // hashes of the current tag's attribute names
	nattrs    int
}

// errDupAttr is an attribute given twice in one start tag (XML 1.0 §3.1,
// WFC: Unique Att Spec).
var errDupAttr = &xml.SyntaxError{Msg: "attribute given twice in a start tag"}

// attrName follows attribute names inside a start tag and fails on one
// seen before in the same tag. Names are compared by hash: a collision can
// only refuse the sender's own, strangely named, tag.
func (l *lexer) attrName(c byte) error {
	switch {
	case c != '=' && c != '"' && c != '\'' && c != '/' && c != '>' && !isSpace(c):
		if !l.inAttr {
			l.inAttr, l.ahash = true, fnvOffset
		}
		l.ahash = (l.ahash ^ uint32(c)) * fnvPrime
	case l.inAttr:
		l.inAttr = false
		for _, h := range l.attrs[:l.nattrs] {
			if h == l.ahash {
				return errDupAttr
			}
		}
		if l.nattrs < len(l.attrs) {
			l.attrs[l.nattrs] = l.ahash
			l.nattrs++
		}
	}
	return nil
}

// scanStanza scans like scan but stops after the end of a top-level
// element, setting complete.
func (l *lexer) scanStanza(p []byte) (int, error) {
	l.complete, l.stop = false, true
	defer func() { l.stop = false }()
	return l.scan(p)
}

// between reports whether the lexer is between top-level elements.
func (l *lexer) between() bool { return l.depth == 1 && l.state == lxText }

const fnvPrime, fnvOffset = 16777619, 2166136261

// errMismatch is an end tag that does not close the open element.
var errMismatch = &xml.SyntaxError{Msg: "end tag does not match the open element"}

// topName is the local name of the last top-level element started.
func (l *lexer) topName() string { return l.top }

func (l *lexer) scan(p []byte) (int, error) {
	l.topStart = -1
	for i, c := range p {
		if l.complete && l.stop {
			return i, nil
		}
		l.size++
		if l.limit > 0 && l.size > l.limit {
			return i, errTooBig
		}
		switch l.state {
		case lxText:
			if l.depth == 1 && c != '<' {
				l.size = 0 // keepalives between stanzas add up to nothing
			}
			switch c {
			case '<':
				l.state = lxLT
				if l.depth == 1 {
					l.topStart = i
				}
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
				l.nattrs, l.inAttr = 0, false
				l.name[0], l.nameLen = c, 1
				l.hash = (fnvOffset ^ uint32(c)) * fnvPrime
			}
			if l.state == lxEndTag {
				l.hash, l.endName = fnvOffset, false
			}
		case lxName:
			switch {
			case c == '>' || c == '/' || isSpace(c):
				l.state = lxAttrs
				if c == '>' {
					if err := l.endStartTag(); err != nil {
						return i, err
					}
				} else if c == '/' {
					l.selfClose = true
				}
			default:
				l.hash = (l.hash ^ uint32(c)) * fnvPrime
				if l.nameLen < len(l.name) {
					l.name[l.nameLen] = c
					l.nameLen++
				}
			}
		case lxAttrs:
			if l.attrCheck {
				if err := l.attrName(c); err != nil {
					return i, err
				}
			}
			switch c {
			case '"', '\'':
				l.state, l.quote = lxValue, c
			case '/':
				l.selfClose = true
			case '>':
				if err := l.endStartTag(); err != nil {
					return i, err
				}
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
			switch {
			case c == '>':
				l.state = lxText
				if l.depth > 1 {
					n := len(l.open) - 1
					if n < 0 || l.open[n] != l.hash {
						return i, errMismatch
					}
					l.open = l.open[:n]
				}
				l.depth--
				if l.depth <= 1 {
					l.size = 0
					l.complete = l.depth == 1
				}
			case isSpace(c):
				l.endName = true
			case l.endName:
				return i, errMismatch // something after the end tag's name
			default:
				l.hash = (l.hash ^ uint32(c)) * fnvPrime
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

func (l *lexer) endStartTag() error {
	l.state = lxText
	name := string(l.name[:l.nameLen])
	if isStreamHeader(name) {
		// A stream header (also a restart after STARTTLS or SASL): depth 1.
		l.depth, l.size, l.opened = 1, 0, true
		l.headers++
		l.open = l.open[:0]
		return nil
	}
	if l.depth == 1 {
		l.top = localName(name)
	}
	if !l.selfClose {
		if l.depth >= 1 {
			if len(l.open) > maxDepth {
				return errDepth
			}
			l.open = append(l.open, l.hash)
		}
		l.depth++
	} else if l.depth <= 1 {
		l.size = 0
		l.complete = l.depth == 1
	}
	return nil
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

package xmpp

import (
	"bytes"
	"encoding/xml"
	"io"
	"net"
	"time"
)

// The web transports (WebSocket, RFC 7395; BOSH, XEP-0206) carry a client
// stream in pieces: one message per top-level element, and the stream's
// header and end as elements of their own. They present that stream to the
// server as a net.Conn, translating both ways, so that negotiation and the
// session are the same code as over TCP: the transport turns the client's
// pieces back into stream bytes, and a StreamSplitter turns what the server
// writes into pieces again.

// PartKind says what a StreamPart is.
type PartKind uint8

// The kinds of StreamPart.
const (
	// PartHeader is the server's stream header (<stream:stream>).
	PartHeader PartKind = iota + 1
	// PartElement is one top-level element: a stanza, <stream:features/>,
	// <stream:error/>, a SASL element.
	PartElement
	// PartEnd is the stream's end (</stream:stream>).
	PartEnd
)

// A StreamPart is one piece of what the server writes on a client stream.
type StreamPart struct {
	Kind PartKind
	// Header holds the attributes of a PartHeader.
	Header StreamHeader
	// A PartElement is el as the server wrote it, with decl (the namespace
	// declarations it relied on from the stream header) to insert at at;
	// AppendElement and WriteElement put them together. el is valid until
	// the next call to StreamSplitter.Write.
	el   []byte
	at   int
	decl string
}

// Len is the length of a PartElement as AppendElement gives it.
func (p StreamPart) Len() int { return len(p.el) + len(p.decl) }

// AppendElement appends a PartElement, declaring the namespaces it relied
// on from the stream header, so that it stands alone (RFC 7395 §3.3.3).
func (p StreamPart) AppendElement(b []byte) []byte {
	b = append(b, p.el[:p.at]...)
	b = append(b, p.decl...)
	return append(b, p.el[p.at:]...)
}

// WriteElement writes what AppendElement gives to w, without a copy.
func (p StreamPart) WriteElement(w io.Writer) error {
	if _, err := w.Write(p.el[:p.at]); err != nil {
		return err
	}
	if _, err := io.WriteString(w, p.decl); err != nil {
		return err
	}
	_, err := w.Write(p.el[p.at:])
	return err
}

// StreamHeader holds the attributes of a stream header.
type StreamHeader struct {
	ID, From, To, Version, Lang string
}

// A StreamSplitter turns the bytes the server writes on a client stream into
// StreamParts. The server's output is well-formed XML without comments or
// CDATA, so finding where a top-level element ends needs no full parser. The
// zero value is ready to use.
type StreamSplitter struct {
	buf []byte
	// scan state over buf[pos:]
	pos   int
	depth int
	// start is where the current top-level construct began; -1 between.
	start int
}

// Write adds bytes the server wrote and calls emit for each part they
// complete. It stops at emit's first error.
func (sp *StreamSplitter) Write(p []byte, emit func(StreamPart) error) error {
	if len(sp.buf) == 0 {
		sp.buf, sp.pos, sp.start = append(sp.buf[:0], p...), 0, -1
	} else {
		sp.buf = append(sp.buf, p...)
	}
	for {
		part, ok := sp.next()
		if !ok {
			break
		}
		if err := emit(part); err != nil {
			return err
		}
	}
	// Keep only what is not yet a part.
	from := sp.pos
	if sp.start >= 0 {
		from = sp.start
	}
	n := copy(sp.buf, sp.buf[from:])
	sp.buf = sp.buf[:n]
	sp.pos -= from
	if sp.start >= 0 {
		sp.start = 0
	}
	if n == 0 && cap(sp.buf) > 16<<10 {
		sp.buf = nil // a large stanza's buffer is not kept
	}
	return nil
}

// next finds the next complete part in buf, advancing pos past it.
func (sp *StreamSplitter) next() (StreamPart, bool) {
	b := sp.buf
	for sp.pos < len(b) {
		if sp.start < 0 {
			// Between top-level constructs: skip whitespace.
			c := b[sp.pos]
			if c != '<' {
				sp.pos++
				continue
			}
			sp.start, sp.depth = sp.pos, 0
		}
		// Find the end of the tag at pos (b[pos] == '<' or inside text).
		if b[sp.pos] != '<' {
			i := bytes.IndexByte(b[sp.pos:], '<')
			if i < 0 {
				sp.pos = len(b)
				return StreamPart{}, false
			}
			sp.pos += i
		}
		end := tagEnd(b, sp.pos)
		if end < 0 {
			return StreamPart{}, false
		}
		tag := b[sp.pos:end]
		sp.pos = end
		switch {
		case bytes.HasPrefix(tag, []byte("<?")) && sp.depth == 0:
			sp.start = -1 // the XML declaration
		case bytes.HasPrefix(tag, []byte("</")):
			if sp.depth == 0 {
				// The stream's end tag: the only end tag at the top level.
				sp.start = -1
				return StreamPart{Kind: PartEnd}, true
			}
			sp.depth--
			if sp.depth == 0 {
				return sp.element(), true
			}
		case bytes.HasSuffix(tag, []byte("/>")):
			if sp.depth == 0 {
				return sp.element(), true
			}
		default:
			if sp.depth == 0 && tagName(tag) == "stream:stream" {
				sp.start = -1
				return StreamPart{Kind: PartHeader, Header: parseHeader(tag)}, true
			}
			sp.depth++
		}
	}
	return StreamPart{}, false
}

// tagEnd returns the index just past the tag starting at b[i] ('<'), or -1
// if it is not complete; '>' inside quoted attribute values does not end it.
func tagEnd(b []byte, i int) int {
	var quote byte
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return j + 1
		}
	}
	return -1
}

// tagName is the qualified name of a start tag.
func tagName(tag []byte) string {
	end := 1
	for end < len(tag) && !isSpace(tag[end]) && tag[end] != '>' && tag[end] != '/' {
		end++
	}
	return string(tag[1:end])
}

// prefixNS are the prefixes the server's elements may use from the stream
// header.
var prefixNS = map[string]string{"stream": NSStream}

// element is the top-level element just completed, with the namespace
// declarations it took from the stream header: the default namespace
// (jabber:client) and the stream prefix. It is inserted by whoever sends
// it, not here, so that a stanza is not copied once more on its way out.
func (sp *StreamSplitter) element() StreamPart {
	el := sp.buf[sp.start:sp.pos]
	sp.start = -1
	start := el[:tagEnd(el, 0)]
	name := tagName(start)
	p := StreamPart{Kind: PartElement, el: el, at: 1 + len(name)}
	if prefix, _, ok := cutByte(name, ':'); ok {
		if ns := prefixNS[prefix]; ns != "" && !hasAttr(start, "xmlns:"+prefix) {
			p.decl = ` xmlns:` + prefix + `="` + ns + `"`
		}
	} else if !hasAttr(start, "xmlns") {
		p.decl = defaultDecl
	}
	return p
}

const defaultDecl = ` xmlns="` + NSClient + `"`

func cutByte(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// hasAttr reports whether a start tag has the attribute name.
func hasAttr(tag []byte, name string) bool {
	var quote byte
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case isSpace(c):
			rest := tag[i+1:]
			if bytes.HasPrefix(rest, []byte(name)) && len(rest) > len(name) &&
				(rest[len(name)] == '=' || isSpace(rest[len(name)])) {
				return true
			}
		}
	}
	return false
}

// parseHeader reads the attributes of a stream header the server wrote.
func parseHeader(tag []byte) StreamHeader {
	var h StreamHeader
	d := xml.NewDecoder(bytes.NewReader(tag))
	tok, err := d.RawToken()
	if err != nil {
		return h
	}
	start, _ := tok.(xml.StartElement)
	h.setAttrs(start.Attr)
	return h
}

// setAttrs takes a stream header's attributes (RFC 6120 §4.7), or those of
// RFC 7395's <open/>; xml:lang may come with its prefix or its namespace.
func (h *StreamHeader) setAttrs(attrs []xml.Attr) {
	for _, a := range attrs {
		if a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == NSXML) {
			h.Lang = a.Value
			continue
		}
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			h.ID = a.Value
		case "from":
			h.From = a.Value
		case "to":
			h.To = a.Value
		case "version":
			h.Version = a.Value
		}
	}
}

// AppendStreamOpen appends the stream header a client's transport stands for:
// the transports send it when a stream starts or restarts (RFC 7395 <open/>,
// XEP-0206 session creation and xmpp:restart).
func AppendStreamOpen(b []byte, h StreamHeader) []byte {
	b = append(b, `<stream:stream xmlns="`+NSClient+`" xmlns:stream="`+NSStream+`"`...)
	b = appendAttrs(b, "to", h.To, "from", h.From, "version", h.Version, "xml:lang", h.Lang)
	return append(b, '>')
}

// appendAttrs appends the attributes given as name, value pairs, leaving out
// those with an empty value.
func appendAttrs(b []byte, pairs ...string) []byte {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, pairs[i]...)
		b = append(b, `="`...)
		b = appendEscaped(b, pairs[i+1])
		b = append(b, '"')
	}
	return b
}

// AppendEscaped appends s escaped for XML text or an attribute value.
func AppendEscaped(b []byte, s string) []byte { return appendEscaped(b, s) }

// StanzaLimit is the largest stanza accepted, in bytes (MaxStanzaSize with
// its default applied; negative: no limit).
func (s *Server) StanzaLimit() int {
	return s.cur().MaxStanzaSize
}

// ServeConn negotiates and serves one client stream that a web transport
// presents as a connection: reading from c gives the client's stream,
// writing to c sends the server's (see StreamSplitter). secure says whether
// the transport is protected (HTTPS, or a network trusted to be, such as a
// TLS-terminating proxy on the same host). STARTTLS is never offered on such
// a stream; on one that is not secure, authentication is refused with
// <encryption-required/> unless AllowPlaintextAuth is set. ServeConn returns
// once negotiation is over; the session runs on.
func (s *Server) ServeConn(c net.Conn, secure bool) {
	s.init()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	mode := webInsecure
	if secure {
		mode = webSecure
	}
	// The HTTP listener charged the connection rate at accept
	// (LimitListener); the stream counts as unauthenticated from here.
	addr := addrKey(c.RemoteAddr())
	if why := s.admission.acquire(addr, s.cur().MaxUnauthPerIP, time.Now()); why != "" {
		c := &conn{srv: s, raw: c, remote: c.RemoteAddr().String(), guard: newGuard(c, 0, nil)}
		c.fail(StreamError{Condition: PolicyViolation, Text: string(why)})
		c.raw.Close()
		return
	}
	s.handleConn(c, mode, addr)
}

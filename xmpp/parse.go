package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// parseStanza parses one top-level element, framed by the guard, in the
// stream's default namespace. Stanzas are plain markup almost always, and a
// single pass over their bytes parses them into an Element several times
// faster than encoding/xml. Whatever the fast path does not handle exactly
// as encoding/xml would (CDATA sections, carriage returns, non-ASCII names,
// undeclared prefixes) is parsed by encoding/xml instead, so the result does
// not depend on which path was taken: FuzzParseStanza checks that. Both
// paths reject an attribute given twice, which encoding/xml alone accepts.
func parseStanza(b []byte, defaultNS string) (*Element, error) {
	if bytes.IndexByte(b, '\r') >= 0 {
		// encoding/xml normalises line ends; leave that to it.
		return parseStanzaStd(b, defaultNS)
	}
	p := fastParser{b: b}
	p.ns = append(p.nsBuf[:0], binding{uri: defaultNS})
	el, err := p.element(0)
	if err == nil && p.i < len(b) {
		p.skipSpace()
		if p.i < len(b) {
			err = p.syntax("content after the element")
		}
	}
	if err == errSlowPath {
		return parseStanzaStd(b, defaultNS)
	}
	return el, err
}

// parseStanzaStd parses with encoding/xml.
func parseStanzaStd(b []byte, defaultNS string) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.DefaultSpace = defaultNS
	var el *Element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if el == nil {
				return nil, io.ErrUnexpectedEOF
			}
			return el, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if el != nil {
				return nil, &xml.SyntaxError{Msg: "content after the element"}
			}
			if el, err = ReadElement(d, t); err != nil {
				return nil, err
			}
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) > 0 {
				return nil, &xml.SyntaxError{Msg: "text outside the element"}
			}
		default:
			return nil, errRestricted
		}
	}
}

// errSlowPath sends an element to encoding/xml.
var errSlowPath = errors.New("xmpp: not for the fast parser")

type binding struct{ prefix, uri string }

type fastParser struct {
	b     []byte
	i     int
	ns    []binding // in scope, innermost last; prefix "" is the default
	nsBuf [8]binding
	text  []byte // scratch for values with references
}

func (p *fastParser) syntax(msg string) error {
	return &xml.SyntaxError{Msg: msg, Line: 1}
}

func (p *fastParser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n':
			p.i++
		default:
			return
		}
	}
}

func isNameStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isNameChar(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// qname reads a name: local, or prefix:local. Anything else (non-ASCII,
// several colons) goes the slow way.
func (p *fastParser) qname() (prefix, local []byte, err error) {
	start := p.i
	colon := -1
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case isNameChar(c):
		case c == ':':
			if colon >= 0 {
				return nil, nil, errSlowPath
			}
			colon = p.i
		case c >= utf8.RuneSelf:
			return nil, nil, errSlowPath
		default:
			goto done
		}
		p.i++
	}
done:
	name := p.b[start:p.i]
	if len(name) == 0 {
		return nil, nil, p.syntax("expected a name")
	}
	if !isNameStart(name[0]) {
		return nil, nil, errSlowPath
	}
	if colon < 0 {
		return nil, name, nil
	}
	prefix, local = p.b[start:colon], p.b[colon+1:p.i]
	if len(prefix) == 0 || len(local) == 0 || !isNameStart(local[0]) {
		return nil, nil, errSlowPath
	}
	return prefix, local, nil
}

func (p *fastParser) lookup(prefix []byte) (string, bool) {
	for i := len(p.ns) - 1; i >= 0; i-- {
		if p.ns[i].prefix == string(prefix) {
			return p.ns[i].uri, true
		}
	}
	return "", false
}

type rawAttr struct {
	prefix, local []byte
	value         string
}

func (p *fastParser) element(depth int) (*Element, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	if p.i >= len(p.b) || p.b[p.i] != '<' {
		p.skipSpace()
		if p.i >= len(p.b) {
			return nil, io.ErrUnexpectedEOF
		}
		if p.b[p.i] != '<' {
			return nil, errSlowPath
		}
	}
	if p.i+1 < len(p.b) && (p.b[p.i+1] == '?' || p.b[p.i+1] == '!') {
		return nil, errSlowPath
	}
	p.i++
	nameStart := p.i
	prefix, local, err := p.qname()
	if err != nil {
		return nil, err
	}
	qname := p.b[nameStart:p.i]
	scope := len(p.ns)
	var attrs [8]rawAttr
	raw := attrs[:0]
	selfClosing := false
	for {
		if p.i >= len(p.b) {
			return nil, io.ErrUnexpectedEOF
		}
		c := p.b[p.i]
		if c == ' ' || c == '\t' || c == '\n' {
			p.skipSpace()
			continue
		}
		if c == '>' {
			p.i++
			break
		}
		if c == '/' {
			if p.i+1 >= len(p.b) {
				return nil, io.ErrUnexpectedEOF
			}
			if p.b[p.i+1] != '>' {
				return nil, errSlowPath
			}
			p.i += 2
			selfClosing = true
			break
		}
		if p.i > nameStart && !isSpaceByte(p.b[p.i-1]) {
			return nil, errSlowPath // attributes must be separated by space
		}
		ap, al, err := p.qname()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '=' {
			return nil, errSlowPath
		}
		p.i++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		switch {
		case ap == nil && string(al) == "xmlns":
			p.ns = append(p.ns, binding{uri: v})
		case string(ap) == "xmlns":
			if v == "" {
				return nil, errSlowPath
			}
			p.ns = append(p.ns, binding{prefix: string(al), uri: v})
		default:
			raw = append(raw, rawAttr{prefix: ap, local: al, value: v})
		}
	}
	// XML 1.0 §3.1 (WFC: Unique Att Spec) and Namespaces in XML §6.3: no
	// two attributes of a tag, namespace declarations included, have the
	// same (expanded) name. encoding/xml does not check it; checkStartTag
	// does on the slow path, and this is the same rule.
	for i := scope + 1; i < len(p.ns); i++ {
		for j := scope; j < i; j++ {
			if p.ns[i].prefix == p.ns[j].prefix {
				return nil, p.dupDecl(p.ns[i].prefix)
			}
		}
	}
	e := &Element{Local: string(local)}
	space, ok := p.lookup(prefix)
	if !ok {
		return nil, errSlowPath
	}
	e.Space = space
	if len(raw) > 0 {
		e.Attr = make([]Attr, len(raw))
		for i, a := range raw {
			e.Attr[i] = Attr{Local: string(a.local), Value: a.value}
			switch {
			case a.prefix == nil:
			case string(a.prefix) == "xml":
				e.Attr[i].Space = NSXML
			default:
				sp, ok := p.lookup(a.prefix)
				// encoding/xml cannot tell an attribute in the namespace
				// "xmlns" from a declaration, and drops it as one.
				if !ok || sp == "xmlns" {
					return nil, errSlowPath
				}
				e.Attr[i].Space = sp
			}
			// A stanza has a handful of attributes: a linear scan costs
			// less than any set. Names (never empty) mostly differ in
			// length or first letter, which is cheaper to test first.
			cur := &e.Attr[i]
			for j := range i {
				b := &e.Attr[j]
				if len(b.Local) == len(cur.Local) && b.Local[0] == cur.Local[0] &&
					b.Local == cur.Local && b.Space == cur.Space {
					return nil, p.dupAttr(a)
				}
			}
		}
	}
	if !selfClosing {
		if err := p.content(e, qname, depth); err != nil {
			return nil, err
		}
	}
	p.ns = p.ns[:scope]
	return e, nil
}

// dupDecl and dupAttr report an attribute given twice in a start tag;
// the error is a syntax error, so the stream ends with <not-well-formed/>.
func (p *fastParser) dupDecl(prefix string) error {
	if prefix == "" {
		return p.syntax("attribute xmlns given twice")
	}
	return p.syntax("attribute xmlns:" + prefix + " given twice")
}

func (p *fastParser) dupAttr(a rawAttr) error {
	if a.prefix == nil {
		return p.syntax("attribute " + string(a.local) + " given twice")
	}
	return p.syntax("attribute " + string(a.prefix) + ":" + string(a.local) + " repeats another's namespace and name")
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// content reads children and text up to the end tag named qname.
func (p *fastParser) content(e *Element, qname []byte, depth int) error {
	for {
		start := p.i
		simple := true
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == '<' {
				break
			}
			// XML 1.0 §2.4: ]]> in text must have its > escaped. A
			// reference in between breaks it up, for encoding/xml too.
			if c == '>' && p.i-start >= 2 && p.b[p.i-1] == ']' && p.b[p.i-2] == ']' {
				return p.syntax("unescaped ]]> not in CDATA section")
			}
			if c == '&' || c < 0x20 && c != '\t' && c != '\n' || c >= utf8.RuneSelf {
				simple = false
			}
			p.i++
		}
		if p.i > start {
			var t string
			if simple {
				t = string(p.b[start:p.i])
			} else {
				s, err := p.decode(p.b[start:p.i])
				if err != nil {
					return err
				}
				t = s
			}
			if t != "" {
				e.Children = append(e.Children, Text(t))
			}
		}
		if p.i+1 >= len(p.b) {
			return io.ErrUnexpectedEOF
		}
		switch p.b[p.i+1] {
		case '/':
			p.i += 2
			start := p.i
			if _, _, err := p.qname(); err != nil {
				return err
			}
			if !bytes.Equal(p.b[start:p.i], qname) {
				return p.syntax("element <" + string(qname) + "> closed by </" + string(p.b[start:p.i]) + ">")
			}
			p.skipSpace()
			if p.i >= len(p.b) {
				return io.ErrUnexpectedEOF
			}
			if p.b[p.i] != '>' {
				return errSlowPath
			}
			p.i++
			return nil
		case '!', '?':
			return errSlowPath
		}
		c, err := p.element(depth + 1)
		if err != nil {
			return err
		}
		e.Children = append(e.Children, c)
	}
}

// value reads a quoted attribute value.
func (p *fastParser) value() (string, error) {
	if p.i >= len(p.b) {
		return "", io.ErrUnexpectedEOF
	}
	q := p.b[p.i]
	if q != '"' && q != '\'' {
		return "", errSlowPath
	}
	p.i++
	start := p.i
	simple := true
	for p.i < len(p.b) && p.b[p.i] != q {
		c := p.b[p.i]
		if c == '<' {
			return "", errSlowPath
		}
		if c == '&' || c < 0x20 && c != '\t' && c != '\n' || c >= utf8.RuneSelf {
			simple = false
		}
		p.i++
	}
	if p.i >= len(p.b) {
		return "", io.ErrUnexpectedEOF
	}
	v := p.b[start:p.i]
	p.i++
	if simple {
		return string(v), nil
	}
	return p.decode(v)
}

// decode resolves references and checks characters in text or a value.
func (p *fastParser) decode(s []byte) (string, error) {
	out := p.text[:0]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '&':
			end := bytes.IndexByte(s[i:], ';')
			if end < 0 {
				return "", errSlowPath
			}
			ref := s[i+1 : i+end]
			i += end + 1
			switch string(ref) {
			case "lt":
				out = append(out, '<')
			case "gt":
				out = append(out, '>')
			case "amp":
				out = append(out, '&')
			case "apos":
				out = append(out, '\'')
			case "quot":
				out = append(out, '"')
			default:
				r, ok := charRef(ref)
				if !ok {
					return "", errSlowPath
				}
				out = utf8.AppendRune(out, r)
			}
		case c < utf8.RuneSelf:
			if c < 0x20 && c != '\t' && c != '\n' {
				return "", p.syntax("illegal character code U+" + strconv.FormatInt(int64(c), 16))
			}
			out = append(out, c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return "", p.syntax("invalid UTF-8")
			}
			if !isXMLChar(r) {
				return "", p.syntax("illegal character code U+" + strconv.FormatInt(int64(r), 16))
			}
			out = append(out, s[i:i+n]...)
			i += n
		}
	}
	p.text = out
	return string(out), nil
}

// charRef resolves &#N; and &#xH; to a character XML allows.
func charRef(ref []byte) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	var n uint64
	var err error
	if ref[1] == 'x' {
		if len(ref) < 3 {
			return 0, false
		}
		n, err = strconv.ParseUint(string(ref[2:]), 16, 32)
	} else {
		n, err = strconv.ParseUint(string(ref[1:]), 10, 32)
	}
	if err != nil || !isXMLChar(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

// isXMLChar is XML 1.0's Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

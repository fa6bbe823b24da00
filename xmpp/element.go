package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NSXML is the namespace bound to the xml: prefix (xml:lang).
const NSXML = "http://www.w3.org/XML/1998/namespace"

// An Element is a parsed XML element: a stanza, or part of one. Elements are
// parsed once when read and serialised once per distinct output.
type Element struct {
	Space, Local string
	Attr         []Attr
	// Children holds *Element, Text and Raw values in document order.
	Children []Node
}

// Attr is an attribute; Space is the attribute's namespace, empty for the
// ordinary unqualified attributes. Namespace declarations are not kept as
// attributes: they are implied by the Space of elements and attributes.
type Attr struct {
	Space, Local, Value string
}

// Node is *Element, Text or Raw.
type Node interface{ node() }

// Text is character data.
type Text string

// Raw is content already serialised, well-formed, for the namespace of the
// element that holds it, and written as it is: a large result built
// straight into bytes (a team's roster) instead of as elements first.
// Elements, Child and Text do not see into it.
type Raw []byte

func (*Element) node() {}
func (Text) node()     {}
func (Raw) node()      {}

// NewElement returns an element with the given name and unqualified
// attributes given as name, value pairs.
func NewElement(space, local string, attrs ...string) *Element {
	e := &Element{Space: space, Local: local}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attr = append(e.Attr, Attr{Local: attrs[i], Value: attrs[i+1]})
	}
	return e
}

// Get returns the value of the unqualified attribute name, or "".
func (e *Element) Get(name string) string {
	for _, a := range e.Attr {
		if a.Local == name && a.Space == "" {
			return a.Value
		}
	}
	return ""
}

// Set sets (or, with an empty value, removes) the unqualified attribute name.
func (e *Element) Set(name, value string) {
	for i, a := range e.Attr {
		if a.Local == name && a.Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, Attr{Local: name, Value: value})
	}
}

// Add appends children and returns e.
func (e *Element) Add(children ...Node) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// Child returns the first child element with the given name ("" matches any
// namespace), or nil.
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Children {
		if c, ok := n.(*Element); ok && c.Local == local && (space == "" || c.Space == space) {
			return c
		}
	}
	return nil
}

// Elements returns the child elements.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, n := range e.Children {
		if c, ok := n.(*Element); ok {
			out = append(out, c)
		}
	}
	return out
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	var b strings.Builder
	for _, n := range e.Children {
		if t, ok := n.(Text); ok {
			b.WriteString(string(t))
		}
	}
	return b.String()
}

// Copy returns a deep copy of e, so that a stanza can be changed per
// recipient without touching the original.
func (e *Element) Copy() *Element {
	c := &Element{Space: e.Space, Local: e.Local, Attr: append([]Attr(nil), e.Attr...)}
	if len(e.Children) > 0 {
		c.Children = make([]Node, len(e.Children))
		for i, n := range e.Children {
			if ce, ok := n.(*Element); ok {
				c.Children[i] = ce.Copy()
			} else {
				c.Children[i] = n
			}
		}
	}
	return c
}

// ShallowCopy copies e's name and attributes and shares its children: enough
// to restamp addresses on a stanza.
func (e *Element) ShallowCopy() *Element {
	return &Element{Space: e.Space, Local: e.Local, Attr: append([]Attr(nil), e.Attr...), Children: e.Children}
}

// errDepth guards the parser's recursion.
var errDepth = errors.New("xmpp: element nesting too deep")

const maxDepth = 64

// ReadElement reads the rest of the element that start opened from r.
func ReadElement(r xml.TokenReader, start xml.StartElement) (*Element, error) {
	return readElement(r, start, 0)
}

func readElement(r xml.TokenReader, start xml.StartElement, depth int) (*Element, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	if err := checkStartTag(start); err != nil {
		return nil, err
	}
	e := &Element{Space: start.Name.Space, Local: start.Name.Local}
	if len(start.Attr) > 0 {
		e.Attr = make([]Attr, 0, len(start.Attr))
		for _, a := range start.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				continue
			}
			sp := a.Name.Space
			if sp == "xml" {
				sp = NSXML
			}
			e.Attr = append(e.Attr, Attr{Space: sp, Local: a.Name.Local, Value: a.Value})
		}
	}
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := readElement(r, t, depth+1)
			if err != nil {
				return nil, err
			}
			e.Children = append(e.Children, c)
		case xml.EndElement:
			return e, nil
		case xml.CharData:
			if len(t) == 0 {
				continue
			}
			if n := len(e.Children); n > 0 {
				if prev, ok := e.Children[n-1].(Text); ok {
					e.Children[n-1] = prev + Text(t)
					continue
				}
			}
			e.Children = append(e.Children, Text(t))
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, errRestricted
		}
	}
}

// checkStartTag holds a start tag from encoding/xml to two rules it does not
// check itself.
//
// Names: encoding/xml checks p:l as a whole and then splits it, so it lets
// through <p:0/>, whose local part cannot start a name, and <:a/> or <a:/>.
// Namespaces in XML §3 makes a local part an NCName. Kept, such an element
// would be written out as <0 xmlns="..."/> to the stanza's recipient, whose
// stream would end on it.
//
// Attributes: XML 1.0 §3.1 (WFC: Unique Att Spec) with Namespaces in XML
// §6.3: no two attributes of a start tag, namespace declarations included,
// have the same expanded name (a:x and b:x with a and b bound to one
// namespace are the same attribute). A stanza with 'to' or 'from' twice
// must never reach the router. encoding/xml has resolved the names
// already; a tag has a handful of attributes, so a linear scan costs less
// than a set.
// CheckStartTag is checkStartTag for the web transports' framing elements
// (BOSH's <body/>), which are parsed outside this package.
func CheckStartTag(start xml.StartElement) error { return checkStartTag(start) }

func checkStartTag(start xml.StartElement) error {
	if !localNameOK(start.Name.Local) {
		return badName(start.Name.Local)
	}
	attrs := start.Attr
	for i := range attrs {
		a := &attrs[i].Name
		if !localNameOK(a.Local) {
			return badName(a.Local)
		}
		for j := range i {
			// Names mostly differ in length: cheaper to test first.
			if b := &attrs[j].Name; len(b.Local) == len(a.Local) && *a == *b {
				return dupAttrError(*a)
			}
		}
	}
	return nil
}

// localNameOK reports whether the local part encoding/xml split off a name,
// all of whose characters it has checked, is an NCName. It splits at the
// only colon it allows, and leaves one in the local part only when there is
// nothing before it (:a) or after it (a:).
func localNameOK(s string) bool {
	if s == "" || s[len(s)-1] == ':' {
		return false
	}
	if c := s[0]; c < utf8.RuneSelf {
		return isNameStart(c)
	}
	// Rare: encoding/xml's tables say which characters start a name.
	_, err := xml.NewDecoder(strings.NewReader("<" + s + "/>")).RawToken()
	return err == nil
}

func badName(local string) error {
	return &xml.SyntaxError{Msg: "invalid local name " + strconv.Quote(local)}
}

func dupAttrError(n xml.Name) error {
	switch n.Space {
	case "":
		return &xml.SyntaxError{Msg: "attribute " + n.Local + " given twice"}
	case "xmlns":
		return &xml.SyntaxError{Msg: "attribute xmlns:" + n.Local + " given twice"}
	}
	return &xml.SyntaxError{Msg: "attribute " + n.Local + " in namespace " + n.Space + " given twice"}
}

// Append serialises e onto b as it appears inside a stream whose default
// namespace is parentNS, and returns the extended buffer.
func (e *Element) Append(b []byte, parentNS string) []byte {
	return e.append(b, parentNS, 0)
}

// Bytes serialises e for a stream whose default namespace is parentNS.
func (e *Element) Bytes(parentNS string) []byte {
	return e.Append(make([]byte, 0, 256), parentNS)
}

func (e *Element) String() string { return string(e.Bytes("")) }

func (e *Element) append(b []byte, parentNS string, prefixes int) []byte {
	b = append(b, '<')
	b = append(b, e.Local...)
	if e.Space != parentNS {
		b = append(b, ` xmlns="`...)
		b = appendEscaped(b, e.Space)
		b = append(b, '"')
	}
	for _, a := range e.Attr {
		b = append(b, ' ')
		switch a.Space {
		case "":
		case NSXML:
			b = append(b, "xml:"...)
		default:
			// A namespaced attribute needs a prefix of its own.
			prefixes++
			p := "ns" + itoa(prefixes)
			b = append(b, "xmlns:"...)
			b = append(b, p...)
			b = append(b, `="`...)
			b = appendEscaped(b, a.Space)
			b = append(b, `" `...)
			b = append(b, p...)
			b = append(b, ':')
		}
		b = append(b, a.Local...)
		b = append(b, `="`...)
		b = appendEscaped(b, a.Value)
		b = append(b, '"')
	}
	if len(e.Children) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.Children {
		switch c := n.(type) {
		case *Element:
			b = c.append(b, e.Space, prefixes)
		case Text:
			b = appendEscaped(b, string(c))
		case Raw:
			b = append(b, c...)
		}
	}
	b = append(b, "</"...)
	b = append(b, e.Local...)
	return append(b, '>')
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// appendEscaped escapes character data and attribute values alike.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '"':
			esc = "&quot;"
		case '\'':
			esc = "&apos;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}

// ParseElement parses one complete element from XML text (tests, fuzzing,
// configuration of canned stanzas).
func ParseElement(data []byte) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return ReadElement(d, t)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("xmpp: text outside an element")
			}
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, errRestricted
			}
		default:
			return nil, errRestricted
		}
	}
}

// A Fanout is a stanza serialised once for many recipients that differ only
// in 'to' (a groupchat message or an occupant's presence in a room): For
// splices the address in, without serialising the stanza again.
type Fanout struct {
	head string // "<message"
	tail []byte // the rest, after the element name
	el   *Element
}

// NewFanout serialises el, which must have no 'to', for the jabber:client
// namespace.
func NewFanout(el *Element) Fanout {
	b := el.Bytes(NSClient)
	n := 1 + len(el.Local)
	return Fanout{head: string(b[:n]), tail: b[n:], el: el}
}

// Element is the stanza addressed to one recipient as an element, for one
// that is not a local session (the router takes it to another server).
// It shares el's children, which must not change afterwards.
func (f Fanout) Element(to string) *Element {
	c := f.el.ShallowCopy()
	c.Set("to", to)
	return c
}

// Template is the stanza f was made from, without 'to': two fanouts are
// the same stanza when their templates are the same element.
func (f Fanout) Template() *Element { return f.el }

// Size is the length of the serialised stanza without its 'to'.
func (f Fanout) Size() int { return len(f.head) + len(f.tail) }

// For returns the stanza addressed to to.
func (f Fanout) For(to string) []byte {
	b := make([]byte, 0, len(f.head)+len(to)+8+len(f.tail))
	b = append(b, f.head...)
	b = append(b, ` to="`...)
	b = appendEscaped(b, to)
	b = append(b, '"')
	return append(b, f.tail...)
}

// ParseStanza parses a stanza as a client stream carries it, in the
// jabber:client namespace unless it declares another: what Bytes(NSClient)
// wrote (a stored offline message, a last presence).
func ParseStanza(b []byte) (*Element, error) { return parseStanza(b, NSClient) }

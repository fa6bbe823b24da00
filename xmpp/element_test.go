package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"testing"
)

const chatMessage = `<message xmlns="jabber:client" to="bob@example.com/phone" from="alice@example.com/desk" type="chat" id="a1b2c3" xml:lang="en"><body>Are we still on for lunch &amp; a walk?</body><active xmlns="http://jabber.org/protocol/chatstates"/><request xmlns="urn:xmpp:receipts"/><origin-id xmlns="urn:xmpp:sid:0" id="e6f7"/></message>`

func TestElementRoundTrip(t *testing.T) {
	for _, in := range []string{
		chatMessage,
		`<iq xmlns="jabber:client" type="get" id="1"><query xmlns="jabber:iq:roster"/></iq>`,
		`<presence xmlns="jabber:client"><show>away</show><status>a &lt;b&gt; "c" 'd'</status><priority>-3</priority></presence>`,
		`<message xmlns="jabber:client"><x xmlns="urn:a" xmlns:p="urn:p" p:attr="v"><y/>text<z>more</z>tail</x></message>`,
	} {
		el, err := ParseElement([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out := el.Bytes("")
		again, err := ParseElement(out)
		if err != nil {
			t.Fatalf("reparse %s: %v", out, err)
		}
		if !bytes.Equal(again.Bytes(""), out) {
			t.Fatalf("not stable:\n%s\n%s", out, again.Bytes(""))
		}
	}
	el, _ := ParseElement([]byte(chatMessage))
	if el.Get("type") != "chat" || el.Child("", "body").Text() != "Are we still on for lunch & a walk?" {
		t.Fatalf("parsed wrong: %s", el)
	}
	if a := el.Attr[len(el.Attr)-1]; a.Space != NSXML || a.Local != "lang" {
		t.Fatalf("xml:lang: %+v", a)
	}
}

// FuzzParse runs arbitrary bytes through the guard's lexer and the stanza
// parser: neither may panic, and whatever parses must serialise to XML that
// parses back to the same serialisation.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		chatMessage,
		`<iq type="set" id="x"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r</resource></bind></iq>`,
		`<presence/>`,
		`<message><body><![CDATA[<not a tag>]]></body></message>`,
		`<message><!-- c --></message>`,
		`<?xml version="1.0"?><a/>`,
		`<a b='&#x41;&#65;&quot;'/>`,
		`<a>&foo;</a>`,
		`<!DOCTYPE a><a/>`,
		`<a xmlns:p="u" p:b="c"><p:d/></a>`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range duplicateAttrSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var l lexer
		l.limit = 1 << 20
		l.scan(data)
		el, err := ParseElement(data)
		if err != nil {
			return
		}
		if err := duplicateAttr(data); err != nil {
			t.Fatalf("%q parsed, but %v", data, err)
		}
		out := el.Bytes("")
		if err := duplicateAttr(out); err != nil {
			t.Fatalf("%q serialised as %q: %v", data, out, err)
		}
		again, err := ParseElement(out)
		if err != nil {
			t.Fatalf("serialised %q from %q does not parse: %v", out, data, err)
		}
		if o2 := again.Bytes(""); !bytes.Equal(o2, out) {
			t.Fatalf("round trip differs:\n%q\n%q", out, o2)
		}
	})
}

func TestLexer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`<stream:stream><message><body>a &amp; b</body></message>`, nil},
		{`<stream:stream><message a='&lt;'/>`, nil},
		{`<stream:stream><message><body><![CDATA[<!-- not a comment -->]]></body></message>`, nil},
		{`<?xml version='1.0'?><stream:stream>`, nil},
		{`<stream:stream><!-- x -->`, errRestricted},
		{`<stream:stream><message><?pi x?></message>`, errRestricted},
		{`<!DOCTYPE x><stream:stream>`, errRestricted},
		{`<stream:stream><message><body>&nbsp;</body></message>`, errRestricted},
		{`<stream:stream><message b="&ent;"/>`, errRestricted},
	} {
		l := lexer{limit: 1000}
		_, err := l.scan([]byte(tc.in))
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%s: got %v, want %v", tc.in, err, tc.want)
		}
	}
	// The limit counts each top-level element, not the stream.
	l := lexer{limit: 64}
	stanza := []byte(`<message><body>0123456789012345678901234567</body></message>`)
	if _, err := l.scan([]byte(`<stream:stream>`)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := l.scan(stanza); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
	if _, err := l.scan(bytes.Repeat([]byte("x"), 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.scan([]byte(`<message><body>` + string(bytes.Repeat([]byte("y"), 64)))); err != errTooBig {
		t.Fatalf("want errTooBig, got %v", err)
	}
}

// BenchmarkParseSerialize parses a typical chat message from the wire and
// serialises it again, as the server does once per delivery.
func BenchmarkParseSerialize(b *testing.B) {
	data := []byte(`<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">` + chatMessage)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(chatMessage)))
	for i := 0; i < b.N; i++ {
		d := xml.NewDecoder(bytes.NewReader(data))
		d.Token() // stream header
		tok, _ := d.Token()
		el, err := ReadElement(d, tok.(xml.StartElement))
		if err != nil {
			b.Fatal(err)
		}
		el.Set("from", "alice@example.com/desk")
		buf = el.Append(buf[:0], NSClient)
	}
}

// FuzzParseStanza checks that the fast stanza parser agrees with
// encoding/xml on every input: both fail, or both give the same element.
func FuzzParseStanza(f *testing.F) {
	for _, s := range []string{
		chatMessage,
		`<iq type="set" id="x"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r</resource></bind></iq>`,
		`<presence/>`,
		` <presence xml:lang='en'><show>away</show><status>a &amp; b &#x263A; &#9731; ☺</status></presence> `,
		`<message><body><![CDATA[<not a tag>]]></body></message>`,
		`<a b='&#x41;&#65;&quot;'/>`,
		`<a xmlns:p="u" p:b="c"><p:d/><q:e/></a>`,
		`<a xmlns="u"><b xmlns=""/><c/></a>`,
		"<a>\r\n</a>",
		`<a><b></a></b>`,
		`<a b="1"c="2"/>`,
		`<a>x</a>y`,
		"<a>\x01</a>",
		`<a b='<'/>`,
		`<a:b:c/>`,
		`<é/>`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range duplicateAttrSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, errFast := parseStanza(data, NSClient)
		std, errStd := parseStanzaStd(data, NSClient)
		if (errFast == nil) != (errStd == nil) {
			t.Fatalf("%q: fast parser error %v, encoding/xml error %v", data, errFast, errStd)
		}
		if errFast != nil {
			return
		}
		if !sameElement(fast, std) {
			t.Fatalf("%q:\nfast %s\nstd  %s", data, dump(fast), dump(std))
		}
		// Agreeing is not enough: encoding/xml accepts an attribute given
		// twice, so the parsers must be stricter than it, never looser.
		if err := checkStanzaXML(data); err != nil {
			t.Fatalf("%q accepted, but %v", data, err)
		}
	})
}

// duplicateAttrSeeds give the fuzzers attributes twice in every form, and
// near misses that are fine (XML 1.0 §3.1, Namespaces in XML §6.3).
var duplicateAttrSeeds = []string{
	`<message to='a' to='b' type='chat' type='normal'/>`,
	`<message from='a@localhost/r' from='b@localhost/r'><body>x</body></message>`,
	`<message><body xml:lang='en' xml:lang='de'>x</body></message>`,
	`<message><x xmlns='urn:x' id='1' id='2'/></message>`,
	`<message xmlns:a='u' a:x='1' a:x='2'/>`,
	`<message xmlns:a='u' xmlns:b='u' a:x='1' b:x='2'/>`,
	`<message xmlns:a='u'><x xmlns:b='u' a:k='1' b:k='2'/></message>`,
	`<message xmlns='jabber:client' xmlns='jabber:client'/>`,
	`<message><x xmlns='urn:x' xmlns:a='urn:a' xmlns:a='urn:b'/></message>`,
	`<message p:x='1' p:x='2'/>`,
	`<message xmlns:a='u' xmlns:b='v' a:x='1' b:x='2' x='3'/>`,
	`<message xmlns:p="xmlns" p:q="1"/>`,
}

// sameElement compares parsed trees; no attributes is no attributes,
// whether the slice is nil or empty.
func sameElement(a, b *Element) bool {
	if a.Space != b.Space || a.Local != b.Local || len(a.Attr) != len(b.Attr) || len(a.Children) != len(b.Children) {
		return false
	}
	for i := range a.Attr {
		if a.Attr[i] != b.Attr[i] {
			return false
		}
	}
	for i, c := range a.Children {
		switch c := c.(type) {
		case Text:
			if t, ok := b.Children[i].(Text); !ok || t != c {
				return false
			}
		case *Element:
			if e, ok := b.Children[i].(*Element); !ok || !sameElement(c, e) {
				return false
			}
		}
	}
	return true
}

func dump(e *Element) string {
	s := fmt.Sprintf("{%q %q %q [", e.Space, e.Local, e.Attr)
	for _, c := range e.Children {
		switch c := c.(type) {
		case Text:
			s += fmt.Sprintf("%q ", string(c))
		case *Element:
			s += dump(c) + " "
		}
	}
	return s + "]}"
}

// BenchmarkParseStanza parses a typical chat message as a session does, with
// the one-pass parser and, for comparison, with encoding/xml; the -8attrs
// runs parse a message with eight attributes on its start tag, more than
// most, for what the duplicate check costs as attributes grow.
func BenchmarkParseStanza(b *testing.B) {
	const manyAttrs = `<message xmlns="jabber:client" xmlns:x="urn:example:x" to="bob@example.com/phone" from="alice@example.com/desk" type="chat" id="a1b2c3" xml:lang="en" x:a="1" x:b="2" x:id="3"><body>hi</body><origin-id xmlns="urn:xmpp:sid:0" id="e6f7" by="bob@example.com" x:c="4"/></message>`
	for _, in := range []struct {
		suffix string
		data   []byte
	}{{"", []byte(chatMessage)}, {"-8attrs", []byte(manyAttrs)}} {
		for _, p := range []struct {
			name  string
			parse func([]byte, string) (*Element, error)
		}{{"fast", parseStanza}, {"encoding-xml", parseStanzaStd}} {
			b.Run(p.name+in.suffix, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					if _, err := p.parse(in.data, NSClient); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

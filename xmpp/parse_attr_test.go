package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"testing"
)

// checkStanzaXML is what the fuzz tests hold the parsers to, written without
// them: an input they accept must be well-formed for encoding/xml, and no
// start tag in its first element may give an attribute twice, which
// encoding/xml does not check.
func checkStanzaXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return duplicateAttr(data)
}

// duplicateAttr finds an attribute given twice in a start tag of the first
// element of data: twice by its literal name (XML 1.0 §3.1, WFC: Unique Att
// Spec) or by its expanded name (Namespaces in XML §6.3). It resolves
// prefixes itself from encoding/xml's raw tokens, with a scope of its own,
// so that it shares nothing with the parsers it checks. Syntax errors are
// not its business: it stops at the first.
func duplicateAttr(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	var scopes []map[string]string // per open element: prefix ("" default) -> namespace
	resolve := func(prefix string) string {
		if prefix == "xml" {
			return NSXML // bound by definition (Namespaces in XML §3)
		}
		for i := len(scopes) - 1; i >= 0; i-- {
			if ns, ok := scopes[i][prefix]; ok {
				return ns
			}
		}
		// An undeclared prefix is an error of its own; \x00 cannot be in
		// a namespace, so the prefix names a namespace no other can be.
		return "\x00undeclared " + prefix
	}
	// A declaration's key keeps it apart from every other attribute.
	const decl = "\x00declaration"
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			scope := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				}
			}
			scopes = append(scopes, scope)
			literal := map[xml.Name]bool{}
			expanded := map[[2]string]xml.Name{}
			for _, a := range t.Attr {
				if literal[a.Name] {
					return fmt.Errorf("<%s>: attribute %s twice", rawName(t.Name), rawName(a.Name))
				}
				literal[a.Name] = true
				var key [2]string
				switch {
				case a.Name.Space == "xmlns":
					key = [2]string{decl, a.Name.Local}
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					key = [2]string{decl, ""}
				case a.Name.Space == "":
					key = [2]string{"", a.Name.Local}
				default:
					key = [2]string{resolve(a.Name.Space), a.Name.Local}
				}
				if first, ok := expanded[key]; ok {
					return fmt.Errorf("<%s>: attributes %s and %s have one expanded name", rawName(t.Name), rawName(first), rawName(a.Name))
				}
				expanded[key] = a.Name
			}
		case xml.EndElement:
			scopes = scopes[:len(scopes)-1]
			if len(scopes) == 0 {
				return nil // the end of the first element
			}
		}
	}
}

// rawName is a name from RawToken as it was written.
func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// parseFast runs the one-pass parser alone, without falling back to
// encoding/xml, so that a test can tell which path decided.
func parseFast(b []byte) (*Element, error) {
	p := fastParser{b: b}
	p.ns = append(p.nsBuf[:0], binding{uri: NSClient})
	return p.element(0)
}

// TestParseRejectsDuplicateAttributes: an attribute given twice in any
// start tag of a stanza, plainly, through two prefixes of one namespace, or
// as a namespace declaration, is a syntax error (so <not-well-formed/>) for
// the one-pass parser, for encoding/xml behind it and for ParseElement;
// near misses are accepted by all. slow marks the inputs the one-pass
// parser leaves to encoding/xml.
func TestParseRejectsDuplicateAttributes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		slow     bool
	}{
		{"issue 15", `<message to='a' to='b' type='chat' type='normal'/>`, false, false},
		{"to twice", `<message to='a@localhost' to='b@localhost'><body>x</body></message>`, false, false},
		{"same value twice", `<message type='chat' type='chat'/>`, false, false},
		{"from twice", `<message from='a@localhost/r' to='b@localhost' from='c@localhost/r'/>`, false, false},
		{"far apart", `<iq a='1' b='2' c='3' d='4' e='5' f='6' g='7' h='8' i='9' a='10'/>`, false, false},
		{"in a child", `<message to='b'><body>x</body><x xmlns='urn:x' id='1' id='2'/></message>`, false, false},
		{"deep in a child", `<iq><a><b><c><d k='1' k='1'/></c></b></a></iq>`, false, false},
		{"xml:lang twice", `<message><body xml:lang='en' xml:lang='de'>x</body></message>`, false, false},
		{"one prefix twice", `<message xmlns:a='urn:a' a:x='1' a:x='2'/>`, false, false},
		{"two prefixes, one namespace", `<message xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/>`, false, false},
		{"two prefixes in a child", `<message><x xmlns='urn:x' xmlns:a='urn:u' xmlns:b='urn:u' a:k='1' b:k='2'/></message>`, false, false},
		{"prefix declared on the parent", `<message xmlns:a='urn:u'><x xmlns:b='urn:u' a:k='1' b:k='2'/></message>`, false, false},
		{"xml namespace by another prefix", `<message xmlns:p='http://www.w3.org/XML/1998/namespace' p:lang='en' xml:lang='de'/>`, false, false},
		{"xmlns twice", `<message xmlns='jabber:client' xmlns='jabber:client'/>`, false, false},
		{"xmlns twice, different", `<message xmlns='jabber:client' xmlns='urn:other'/>`, false, false},
		{"xmlns twice in a child", `<message><x xmlns='urn:x' xmlns='urn:y'/></message>`, false, false},
		{"xmlns:prefix twice", `<message xmlns:a='urn:a' xmlns:a='urn:a'/>`, false, false},
		{"xmlns:prefix twice in a child", `<message><x xmlns='urn:x' xmlns:a='urn:a' xmlns:a='urn:b'/></message>`, false, false},
		{"undeclared prefix twice", `<message p:x='1' p:x='2'/>`, false, true},
		{"after a CDATA section", `<message><body><![CDATA[x]]></body><x xmlns='urn:x' k='1' k='2'/></message>`, false, true},
		{"with a carriage return", "<message to='a'\r\nto='b'/>", false, true},

		{"one attribute per name", chatMessage, true, false},
		{"same name, other namespace", `<message xmlns:a='urn:a' x='1' a:x='2'/>`, true, false},
		{"same name, two namespaces", `<message xmlns:a='urn:a' xmlns:b='urn:b' a:x='1' b:x='2'/>`, true, false},
		{"lang and xml:lang", `<message lang='en' xml:lang='de'/>`, true, false},
		{"same attribute on parent and child", `<message id='1'><x xmlns='urn:x' id='1'/></message>`, true, false},
		{"redeclared in a child", `<message xmlns:a='urn:a' a:x='1'><x xmlns='urn:x' xmlns:a='urn:b' a:x='2'/></message>`, true, false},
		{"xmlns and xmlns:prefix", `<message xmlns='jabber:client' xmlns:xmlns2='urn:a'/>`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			fast, errFast := parseFast(in)
			if errFast == errSlowPath {
				if !tc.slow {
					t.Fatalf("the one-pass parser left %q to encoding/xml", tc.in)
				}
			} else if tc.slow {
				t.Fatalf("the one-pass parser decided %q: %v", tc.in, errFast)
			} else {
				checkResult(t, "one-pass parser", fast, errFast, tc.ok)
			}
			el, err := parseStanza(in, NSClient)
			checkResult(t, "parseStanza", el, err, tc.ok)
			el, err = parseStanzaStd(in, NSClient)
			checkResult(t, "encoding/xml path", el, err, tc.ok)
			el, err = ParseElement(in)
			checkResult(t, "ParseElement", el, err, tc.ok)
			// The fuzz tests' checker agrees, or it could not find this.
			if err := duplicateAttr(in); (err == nil) != tc.ok {
				t.Fatalf("duplicateAttr(%q) = %v", tc.in, err)
			}
		})
	}
}

func checkResult(t *testing.T, parser string, el *Element, err error, ok bool) {
	t.Helper()
	if ok {
		if err != nil {
			t.Fatalf("%s: %v", parser, err)
		}
		return
	}
	var syn *xml.SyntaxError
	if !errors.As(err, &syn) {
		t.Fatalf("%s accepted it (%v) or failed otherwise: %v", parser, el, err)
	}
}

// TestDuplicateAttrChecker: the fuzz tests' checker itself, on what it
// must and must not flag.
func TestDuplicateAttrChecker(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool // a duplicate
	}{
		{`<a x='1' x='2'/>`, true},
		{`<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>`, true},
		{`<a xmlns:p='u'><b xmlns:q='u' p:x='1' q:x='2'/></a>`, true},
		{`<a xmlns='u' xmlns='u'/>`, true},
		{`<a xmlns:p='u' xmlns:p='v'/>`, true},
		{`<a xml:lang='en' xmlns:p='http://www.w3.org/XML/1998/namespace' p:lang='de'/>`, true},
		{`<a><b><c k='1' k='2'/></b></a>`, true},
		{`<a xmlns:p='u' xmlns:q='v' p:x='1' q:x='2' x='3'/>`, false},
		{`<a p:x='1' q:x='2'/>`, false}, // undeclared, so different
		{`<a xmlns='u' xmlns:xmlns2='u'/>`, false},
		{`<a/><b x='1' x='2'/>`, false}, // after the first element
	} {
		if err := duplicateAttr([]byte(tc.in)); (err != nil) != tc.want {
			t.Errorf("duplicateAttr(%q) = %v, want a duplicate: %v", tc.in, err, tc.want)
		}
	}
	if err := checkStanzaXML([]byte(`<a><b></a></b>`)); err == nil {
		t.Error("checkStanzaXML accepted mismatched tags")
	}
}

// TestParseRejectsBadLocalNames: a prefixed name whose local part is not a
// name of its own (Namespaces in XML §3), which encoding/xml lets through
// (FuzzParse found <A:0/>), is a syntax error on both paths; it used to be
// kept and written out as <0 xmlns="..."/> to the stanza's recipient.
func TestParseRejectsBadLocalNames(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`<A:0 A=''A00=''/>`, false},
		{`<message><A:0 xmlns:A='urn:a'/></message>`, false},
		{`<message><a:-b xmlns:a='urn:a'/></message>`, false},
		{`<message><a:.b xmlns:a='urn:a'/></message>`, false},
		{"<message><a:\u0660 xmlns:a='urn:a'/></message>", false},  // a digit
		{"<message><a:\u0301b xmlns:a='urn:a'/></message>", false}, // a combining mark
		{`<message><:a/></message>`, false},
		{`<message><a:/></message>`, false},
		{`<message xmlns:0='urn:a'/>`, false},
		{`<message xmlns:='urn:a'/>`, false},
		{`<message xmlns:a='urn:a' a:0='1'/>`, false},
		{`<message :a='1'/>`, false},
		{`<message><a:b0-.x xmlns:a='urn:a' a:_0='1'/></message>`, true},
		{"<message><a:\u00e9t\u00e9 xmlns:a='urn:a'/></message>", true},
		{"<message><\u00e9t\u00e9/></message>", true},
	} {
		in := tc.in
		el, err := parseStanza([]byte(in), NSClient)
		checkResult(t, "parseStanza "+in, el, err, tc.ok)
		el, err = parseStanzaStd([]byte(in), NSClient)
		checkResult(t, "encoding/xml path "+in, el, err, tc.ok)
		el, err = ParseElement([]byte(in))
		checkResult(t, "ParseElement "+in, el, err, tc.ok)
		if tc.ok {
			// What is kept serialises to XML that parses back.
			if _, err := ParseElement(el.Bytes("")); err != nil {
				t.Fatalf("%s serialised as %s: %v", in, el.Bytes(""), err)
			}
		}
	}
}

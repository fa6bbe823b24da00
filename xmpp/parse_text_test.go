package xmpp

import "testing"

// TestParseRejectsCDATAEndInText: ]]> in character data is not well-formed
// unless its > is escaped (XML 1.0 §2.4); encoding/xml rejects it, and so
// must the one-pass parser (FuzzParseStanza found that it did not). In an
// attribute value, in a CDATA section or broken up by a reference it is
// fine.
func TestParseRejectsCDATAEndInText(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`<message><body>]]></body></message>`, false},
		{`<message><body>a ]]> b</body></message>`, false},
		{`<message><body>&amp;]]></body></message>`, false},
		{`<message><body>x</body>]]></message>`, false},
		{`<message><body>]]&gt;</body></message>`, true},
		{`<message><body>]&#93;></body></message>`, true},
		{`<message><body>]]</body><x xmlns='urn:x'/>></message>`, true},
		{`<message><body>] ]></body></message>`, true},
		{`<message id=']]>'/>`, true},
		{`<message><body><![CDATA[a]]>]]&gt;</body></message>`, true},
	} {
		in := []byte(tc.in)
		fast, errFast := parseFast(in)
		if errFast != errSlowPath {
			checkResult(t, "one-pass parser "+tc.in, fast, errFast, tc.ok)
		}
		el, err := parseStanza(in, NSClient)
		checkResult(t, "parseStanza "+tc.in, el, err, tc.ok)
		el, err = parseStanzaStd(in, NSClient)
		checkResult(t, "encoding/xml path "+tc.in, el, err, tc.ok)
	}
}

package form_test

import (
	"slices"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// FuzzParse reads what the fuzzer makes as a data form: a form that
// parses, once written out again, parses to the same fields and values
// (what a module reads from a client's form is what it would send back),
// and Check never panics.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`<x xmlns="jabber:x:data" type="submit"/>`,
		`<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>urn:x</value></field><field var="a"><value>1</value></field></x>`,
		`<x xmlns="jabber:x:data" type="form"><title>T</title><instructions>I</instructions><field var="l" type="list-single"><option label="A"><value>a</value></option><value>a</value></field></x>`,
		`<x xmlns="jabber:x:data" type="result"><field var="m" type="jid-multi"><value>a@b</value><value>c@d</value></field></x>`,
		`<x xmlns="jabber:x:data" type="submit"><field var="b" type="boolean"><value>true</value></field><field var="b"><value>0</value></field></x>`,
		`<x xmlns="other"/>`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		el, err := xmpp.ParseElement([]byte(data))
		if err != nil {
			return
		}
		fm, err := form.Parse(el)
		if err != nil {
			return
		}
		_ = fm.Check()
		again, err := form.Parse(fm.Element())
		if err != nil {
			t.Fatalf("a parsed form does not parse once written: %v\n%s", err, fm.Element().Bytes(form.NS))
		}
		if again.Type != fm.Type || again.FormType != fm.FormType || len(again.Fields) != len(fm.Fields) {
			t.Fatalf("written and read again: type %q/%q FORM_TYPE %q/%q %d/%d fields",
				fm.Type, again.Type, fm.FormType, again.FormType, len(fm.Fields), len(again.Fields))
		}
		for i := range fm.Fields {
			a, b := fm.Fields[i], again.Fields[i]
			if a.Var != b.Var || !slices.Equal(a.Values, b.Values) {
				t.Fatalf("field %d: %q %q, read again %q %q", i, a.Var, a.Values, b.Var, b.Values)
			}
		}
	})
}

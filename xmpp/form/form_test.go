package form_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

func parse(t *testing.T, s string) *form.Form {
	t.Helper()
	el, err := xmpp.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	f, err := form.Parse(el)
	if err != nil {
		t.Fatalf("form.Parse: %v", err)
	}
	return f
}

// TestRoundTrip: a form built with the helpers reads back the same, with
// its FORM_TYPE first and hidden, and every field typed and labelled.
func TestRoundTrip(t *testing.T) {
	f := &form.Form{Type: form.TypeForm, Title: "Settings", Instructions: "Fill in", FormType: "urn:example:settings"}
	f.AddText("name", "Name", "Lobby").
		AddPrivate("secret", "Password", "s3cret").
		AddBool("public", "Public?", true).
		AddList("who", "Who sees JIDs", "anyone", form.Option{Label: "Moderators", Value: "moderators"}, form.Option{Label: "Anyone", Value: "anyone"}).
		AddField(form.Field{Var: "admins", Type: form.JIDMulti, Label: "Admins", Desc: "one per line", Required: true, Values: []string{"a@localhost", "b@localhost"}})
	el := f.Element()
	s := el.String()
	if !strings.HasPrefix(s, `<x xmlns="jabber:x:data" type="form"><title>Settings</title><instructions>Fill in</instructions><field var="FORM_TYPE" type="hidden"><value>urn:example:settings</value></field>`) {
		t.Fatalf("form element starts wrong: %s", s)
	}
	if !strings.Contains(s, `<field var="who" type="list-single" label="Who sees JIDs"><value>anyone</value><option label="Moderators"><value>moderators</value></option><option label="Anyone"><value>anyone</value></option></field>`) {
		t.Fatalf("list field: %s", s)
	}
	if err := f.Check(); err != nil {
		t.Fatalf("a built form breaks the rules: %v", err)
	}
	back, err := form.Parse(el)
	if err != nil {
		t.Fatal(err)
	}
	if back.Type != f.Type || back.Title != f.Title || back.Instructions != f.Instructions || back.FormType != f.FormType || len(back.Fields) != len(f.Fields) {
		t.Fatalf("read back %+v, want %+v", back, f)
	}
	for i := range f.Fields {
		a, b := f.Fields[i], back.Fields[i]
		if a.Var != b.Var || a.Type != b.Type || a.Label != b.Label || a.Desc != b.Desc || a.Required != b.Required ||
			!slices.Equal(a.Values, b.Values) || !slices.Equal(a.Options, b.Options) {
			t.Errorf("field %d read back as %+v, want %+v", i, b, a)
		}
	}
	if err := back.Check(); err != nil {
		t.Fatalf("the parsed form breaks the rules: %v", err)
	}
	if back.Value("name") != "Lobby" || back.Value("missing") != "" || back.Field("missing") != nil {
		t.Fatalf("Value/Field lookups wrong")
	}
	if v, err := back.Field("public").Bool(); err != nil || !v {
		t.Fatalf("public: %v %v", v, err)
	}
}

// TestAddListKeepsItsValue: a value that is not among the options becomes
// one, so that the form offers what is set.
func TestAddListKeepsItsValue(t *testing.T) {
	f := &form.Form{Type: form.TypeForm}
	f.AddList("max", "Most occupants", "7", form.Option{Label: "10", Value: "10"})
	if got := f.Fields[0].Options; len(got) != 2 || got[1] != (form.Option{Label: "7", Value: "7"}) {
		t.Fatalf("options %+v", got)
	}
	if err := f.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestParseSubmitted: a form as clients submit it: FORM_TYPE without a
// type, untyped fields, unknown elements skipped.
func TestParseSubmitted(t *testing.T) {
	f := parse(t, `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>urn:x</value></field>`+
		`<field var="a"><value>1</value></field><field var="b"><value>x</value><value>y</value><other xmlns="urn:other"/></field><junk/></x>`)
	if f.Type != form.TypeSubmit || f.FormType != "urn:x" || len(f.Fields) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	if v, err := f.Field("a").Bool(); err != nil || !v {
		t.Fatalf("a: %v %v", v, err)
	}
	if got := f.Field("b").Values; !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("b: %v", got)
	}
	if _, err := form.Parse(xmpp.NewElement("urn:other", "x")); err != form.ErrNotForm {
		t.Fatalf("parsing a foreign element: %v", err)
	}
}

func TestParseBool(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "true": true, " 0 ": false, "false": false} {
		if got, err := form.ParseBool(v); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "yes", "True", "2"} {
		if _, err := form.ParseBool(v); err == nil {
			t.Errorf("ParseBool(%q) accepted", v)
		}
	}
}

// TestCheck: each broken rule is reported, with the field it is about.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, xml, want string
	}{
		{"bad type", `<x xmlns="jabber:x:data" type="nonsense"/>`, "type"},
		{"no label", `<x xmlns="jabber:x:data" type="form"><field var="a" type="text-single"/></x>`, "a has no label"},
		{"no label in result", `<x xmlns="jabber:x:data" type="result"><field var="a"><value>v</value></field></x>`, "a has no label"},
		{"list without options", `<x xmlns="jabber:x:data" type="form"><field var="l" type="list-single" label="L"><value>v</value></field></x>`, "no options"},
		{"value not an option", `<x xmlns="jabber:x:data" type="form"><field var="l" type="list-single" label="L"><value>v</value><option label="W"><value>w</value></option></field></x>`, `"v" is not among`},
		{"option without label", `<x xmlns="jabber:x:data" type="form"><field var="l" type="list-multi" label="L"><option><value>w</value></option></field></x>`, "has no label"},
		{"bad boolean", `<x xmlns="jabber:x:data" type="form"><field var="b" type="boolean" label="B"><value>yes</value></field></x>`, "not a boolean"},
		{"bad jid", `<x xmlns="jabber:x:data" type="form"><field var="j" type="jid-single" label="J"><value>@</value></field></x>`, "not a JID"},
		{"two values", `<x xmlns="jabber:x:data" type="form"><field var="t" type="text-single" label="T"><value>1</value><value>2</value></field></x>`, "2 values"},
		{"unknown type", `<x xmlns="jabber:x:data" type="form"><field var="t" type="colour" label="T"/></x>`, "unknown type"},
		{"no var", `<x xmlns="jabber:x:data" type="form"><field type="text-single" label="T"/></x>`, "without a var"},
		{"twice", `<x xmlns="jabber:x:data" type="form"><field var="t" label="T"/><field var="t" label="T"/></x>`, "twice"},
		{"visible FORM_TYPE", `<x xmlns="jabber:x:data" type="form"><field var="FORM_TYPE" type="text-single" label="T"><value>urn:x</value></field></x>`, "not hidden"},
		{"untyped FORM_TYPE", `<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE"><value>urn:x</value></field></x>`, "not a hidden field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, tc.xml).Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want an error about %q", err, tc.want)
			}
		})
	}
	// What a client submits needs no labels, nor a typed FORM_TYPE.
	ok := parse(t, `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>urn:x</value></field><field var="a"><value>1</value></field></x>`)
	if err := ok.Check(); err != nil {
		t.Fatalf("a submitted form: %v", err)
	}
}

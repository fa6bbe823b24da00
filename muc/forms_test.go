package muc_test

import (
	"strings"
	"testing"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// registered are the field types of the muc#roomconfig and muc#roominfo
// registries (XEP-0045 §16.5.3, §16.5.4).
var registered = map[string]form.FieldType{
	"muc#maxhistoryfetch":                  form.TextSingle,
	"muc#roomconfig_allowpm":               form.ListSingle,
	"muc#roomconfig_allowinvites":          form.Boolean,
	"muc#roomconfig_changesubject":         form.Boolean,
	"muc#roomconfig_maxusers":              form.ListSingle,
	"muc#roomconfig_membersonly":           form.Boolean,
	"muc#roomconfig_moderatedroom":         form.Boolean,
	"muc#roomconfig_passwordprotectedroom": form.Boolean,
	"muc#roomconfig_persistentroom":        form.Boolean,
	"muc#roomconfig_publicroom":            form.Boolean,
	"muc#roomconfig_roomdesc":              form.TextSingle,
	"muc#roomconfig_roomname":              form.TextSingle,
	"muc#roomconfig_roomsecret":            form.TextPrivate,
	"muc#roomconfig_whois":                 form.ListSingle,
	"muc#roominfo_description":             form.TextSingle,
	"muc#roominfo_occupants":               form.TextSingle,
	"muc#roominfo_subject":                 form.TextSingle,
	"muc#roominfo_subjectmod":              form.Boolean,
	"muc#roomconfig_enablelogging":         form.Boolean,
	"muc#roomconfig_presencebroadcast":     form.ListMulti,
	"muc#roomconfig_getmemberlist":         form.ListMulti,
	"muc#roomconfig_roomadmins":            form.JIDMulti,
	"muc#roomconfig_roomowners":            form.JIDMulti,
	"muc#roominfo_contactjid":              form.JIDMulti,
	"muc#roomconfig_lang":                  form.TextSingle,
	"muc#roominfo_lang":                    form.TextSingle,
}

// dataForms finds every data form in a stanza, at any depth.
func dataForms(el *xmpp.Element) []*xmpp.Element {
	var out []*xmpp.Element
	for _, c := range el.Elements() {
		if c.Space == form.NS && c.Local == "x" {
			out = append(out, c)
			continue
		}
		out = append(out, dataForms(c)...)
	}
	return out
}

// checkForms checks every data form of a stanza the server sent against
// XEP-0004 (form.Check: labels, options of list fields, values among them,
// FORM_TYPE hidden), its FORM_TYPE, and the registered field types.
func checkForms(t *testing.T, what string, st *xmpp.Element, formType string) []*form.Form {
	t.Helper()
	els := dataForms(st)
	if len(els) == 0 {
		t.Fatalf("%s: no data form in %v", what, st)
	}
	var forms []*form.Form
	for _, x := range els {
		f, err := form.Parse(x)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := f.Check(); err != nil {
			t.Errorf("%s breaks XEP-0004:\n%v\n%v", what, err, x)
		}
		if f.FormType != formType {
			t.Errorf("%s: FORM_TYPE %q, want %q", what, f.FormType, formType)
		}
		for _, fl := range f.Fields {
			if want, ok := registered[fl.Var]; ok && fl.Type != want {
				t.Errorf("%s: field %s is %s, registered as %s", what, fl.Var, fl.Type, want)
			}
		}
		forms = append(forms, f)
	}
	return forms
}

// TestFormsFollowXEP0004: every data form the service sends - the room
// configuration form, new and configured, and the muc#roominfo extended
// disco info - follows XEP-0004 as clients need it; a room without a name
// is titled by its localpart in disco#info and disco#items; the form a
// client gets can be submitted back unchanged.
func TestFormsFollowXEP0004(t *testing.T) {
	s := start(t)
	alice := user(t, s, "alice")
	room := "forms@" + service

	join(t, alice, "forms", "alice", "")
	alice.Expect(t, "own presence", presenceFrom(room+"/alice", ""))
	getConfig := func(id string) *form.Form {
		t.Helper()
		alice.SendRaw(t, `<iq type="get" id="`+id+`" to="`+room+`"><query xmlns="`+muc.NSOwner+`"/></iq>`)
		res := alice.Expect(t, "config form", iqResult(id))
		forms := checkForms(t, "configuration form "+id, res, muc.NSConfig)
		if len(forms) != 1 || forms[0].Type != form.TypeForm || len(forms[0].Fields) < 10 {
			t.Fatalf("configuration form %s: %v", id, res)
		}
		return forms[0]
	}
	info := func(id string) *xmpp.Element {
		t.Helper()
		alice.SendRaw(t, `<iq type="get" id="`+id+`" to="`+room+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
		res := alice.Expect(t, "room info", iqResult(id))
		checkForms(t, "room info "+id, res, muc.NSRoomInf)
		return res
	}
	name := func(res *xmpp.Element) string {
		return res.Child(muc.NSInfo, "query").Child(muc.NSInfo, "identity").Get("name")
	}

	// A new room: submit its form back as the client got it.
	f := getConfig("c1")
	var b strings.Builder
	for _, fl := range f.Fields {
		b.WriteString(`<field var="` + fl.Var + `">`)
		for _, v := range fl.Values {
			b.WriteString(`<value>` + v + `</value>`)
		}
		b.WriteString(`</field>`)
	}
	alice.SendRaw(t, `<iq type="set" id="s1" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><x xmlns="jabber:x:data" type="submit">`+
		`<field var="FORM_TYPE"><value>`+muc.NSConfig+`</value></field>`+b.String()+`</x></query></iq>`)
	if r := alice.Expect(t, "submitted", iqResult("s1")); r.Get("type") != "result" {
		t.Fatalf("the form as sent was refused: %v", r)
	}
	if got := name(info("i1")); got != "forms" {
		t.Errorf("a room without a name is called %q in disco#info, want its localpart", got)
	}
	alice.SendRaw(t, `<iq type="get" id="items" to="`+service+`"><query xmlns="`+muc.NSItems+`"/></iq>`)
	if r := alice.Expect(t, "rooms", iqResult("items")); !strings.Contains(r.String(), `jid="`+room+`" name="forms"`) {
		t.Errorf("a room without a name in disco#items: %v", r)
	}

	// Configured with values the form's lists do not offer by default.
	configure(t, alice, room, "c", "muc#roomconfig_roomname", "Forms &amp; Co", "muc#roomconfig_maxusers", "7",
		"muc#roomconfig_passwordprotectedroom", "1", "muc#roomconfig_roomsecret", "pw", "muc#roomconfig_allowpm", "moderators",
		"muc#roomconfig_whois", "anyone")
	f = getConfig("c2")
	for v, want := range map[string]string{"muc#roomconfig_maxusers": "7", "muc#roomconfig_allowpm": "moderators",
		"muc#roomconfig_whois": "anyone", "muc#roomconfig_passwordprotectedroom": "1", "muc#roomconfig_roomname": "Forms & Co"} {
		if got := f.Value(v); got != want {
			t.Errorf("%s = %q, want %q", v, got, want)
		}
	}
	res := info("i2")
	if got := name(res); got != "Forms & Co" {
		t.Errorf("disco#info name %q", got)
	}
	if !strings.Contains(res.String(), "muc_passwordprotected") || !strings.Contains(res.String(), "muc_nonanonymous") {
		t.Errorf("room info features: %v", res)
	}
	// The limit back to none.
	configure(t, alice, room, "c3", "muc#roomconfig_maxusers", "none")
	if got := getConfig("c4").Value("muc#roomconfig_maxusers"); got != "none" {
		t.Errorf("maxusers after none: %q", got)
	}
}

package form_test

import (
	"fmt"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// A module sends a form with labelled, typed fields and reads back what
// the client submitted.
func Example() {
	f := &form.Form{Type: form.TypeForm, Title: "Room settings", FormType: "http://jabber.org/protocol/muc#roomconfig"}
	f.AddText("muc#roomconfig_roomname", "Natural-Language Room Name", "Lobby")
	f.AddBool("muc#roomconfig_persistentroom", "Whether to Make Room Persistent", false)
	f.AddList("muc#roomconfig_whois", "Affiliations that May Discover Real JIDs of Occupants", "moderators",
		form.Option{Label: "Moderators only", Value: "moderators"},
		form.Option{Label: "Anyone", Value: "anyone"})
	fmt.Println(f.Check())
	fmt.Println(f.Element().String())

	el, _ := xmpp.ParseElement([]byte(`<x xmlns="jabber:x:data" type="submit">` +
		`<field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
		`<field var="muc#roomconfig_persistentroom"><value>true</value></field></x>`))
	sub, _ := form.Parse(el)
	persistent, _ := sub.Field("muc#roomconfig_persistentroom").Bool()
	fmt.Println(sub.FormType, persistent)
	// Output:
	// <nil>
	// <x xmlns="jabber:x:data" type="form"><title>Room settings</title><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_roomname" type="text-single" label="Natural-Language Room Name"><value>Lobby</value></field><field var="muc#roomconfig_persistentroom" type="boolean" label="Whether to Make Room Persistent"><value>0</value></field><field var="muc#roomconfig_whois" type="list-single" label="Affiliations that May Discover Real JIDs of Occupants"><value>moderators</value><option label="Moderators only"><value>moderators</value></option><option label="Anyone"><value>anyone</value></option></field></x>
	// http://jabber.org/protocol/muc#roomconfig true
}

package muc_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

const service = "conference." + testenv.Domain

// start runs a server with the MUC service.
func start(t *testing.T) *testenv.Server {
	return startOn(t, "sqlite", nil)
}

// startOn runs a server with the MUC service on backend, or on store when
// it is not nil.
func startOn(t *testing.T, backend string, store storage.Store) *testenv.Server {
	return testenv.Start(t, backend, func(s *xmpp.Server) {
		if store != nil {
			s.Store = store
		}
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true})
	})
}

// user signs in a new account with a fixed resource.
func user(t *testing.T, s *testenv.Server, name string) *testenv.Client {
	j := s.AddUser(t, name, "pw")
	return s.Dial(t, j, "pw", "r")
}

func join(t *testing.T, c *testenv.Client, room, nick, x string) {
	t.Helper()
	if x == "" {
		x = `<x xmlns="` + muc.NS + `"/>`
	}
	c.SendRaw(t, `<presence to="`+room+`@`+service+`/`+nick+`">`+x+`</presence>`)
}

// codes are the muc#user status codes of a stanza.
func codes(el *xmpp.Element) []string {
	var cs []string
	if x := el.Child(muc.NSUser, "x"); x != nil {
		for _, s := range x.Elements() {
			if s.Local == "status" {
				cs = append(cs, s.Get("code"))
			}
		}
	}
	return cs
}

func item(el *xmpp.Element) *xmpp.Element {
	if x := el.Child(muc.NSUser, "x"); x != nil {
		return x.Child(muc.NSUser, "item")
	}
	return nil
}

func presenceFrom(from, typ string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == from && el.Get("type") == typ
	}
}

func errorCondition(el *xmpp.Element) string {
	if e := el.Child(xmpp.NSClient, "error"); e != nil {
		if els := e.Elements(); len(els) > 0 {
			return els[0].Local
		}
	}
	return ""
}

func iqResult(id string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id }
}

// create makes an instant room (XEP-0045 §10.1.2) owned by c under nick.
func create(t *testing.T, c *testenv.Client, room, nick string) {
	t.Helper()
	join(t, c, room, nick, "")
	self := c.Expect(t, "own presence", presenceFrom(room+"@"+service+"/"+nick, ""))
	if got := codes(self); !slices.Contains(got, "110") || !slices.Contains(got, "201") {
		t.Fatalf("new room: status codes %v, want 110 and 201", got)
	}
	if it := item(self); it == nil || it.Get("affiliation") != "owner" || it.Get("role") != "moderator" {
		t.Fatalf("creator's item: %v", self)
	}
	c.SendRaw(t, `<iq type="set" id="inst-`+room+`" to="`+room+`@`+service+`"><query xmlns="`+muc.NSOwner+`"><x xmlns="jabber:x:data" type="submit"/></query></iq>`)
	if r := c.Expect(t, "instant room", iqResult("inst-"+room)); r.Get("type") != "result" {
		t.Fatalf("instant room: %v", r)
	}
}

// configure submits the owner's configuration form with the given fields
// (name, value pairs) and waits for the result.
func configure(t *testing.T, c *testenv.Client, room, id string, fields ...string) {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(fields); i += 2 {
		b.WriteString(`<field var="` + fields[i] + `"><value>` + fields[i+1] + `</value></field>`)
	}
	c.SendRaw(t, `<iq type="set" id="`+id+`" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><x xmlns="jabber:x:data" type="submit">`+b.String()+`</x></query></iq>`)
	if r := c.Expect(t, "configuration "+id, iqResult(id)); r.Get("type") != "result" {
		t.Fatalf("configuration %s: %v", id, r)
	}
}

// TestRoomLifecycle: creation locks the room until its owner configures it;
// then others join, see each other with the right status codes, get the
// subject, and see the room in discovery.
func TestRoomLifecycle(t *testing.T) {
	s := start(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	room := "lobby@" + service

	join(t, alice, "lobby", "Alice", "")
	alice.Expect(t, "own presence", presenceFrom(room+"/Alice", ""))
	alice.Expect(t, "empty subject", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(xmpp.NSClient, "subject") != nil
	})
	// Locked until configured (§10.1.1).
	join(t, bob, "lobby", "Bob", "")
	if e := bob.Expect(t, "refusal", presenceFrom(room+"/Bob", "error")); errorCondition(e) != "item-not-found" {
		t.Fatalf("joining a locked room: %v", e)
	}
	alice.SendRaw(t, `<iq type="get" id="cfg" to="`+room+`"><query xmlns="`+muc.NSOwner+`"/></iq>`)
	form := alice.Expect(t, "config form", iqResult("cfg"))
	if !strings.Contains(form.String(), "muc#roomconfig_persistentroom") {
		t.Fatalf("config form: %v", form)
	}
	alice.SendRaw(t, `<iq type="set" id="submit" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><x xmlns="jabber:x:data" type="submit">`+
		`<field var="FORM_TYPE"><value>`+muc.NSConfig+`</value></field>`+
		`<field var="muc#roomconfig_roomname"><value>The Lobby</value></field>`+
		`<field var="muc#roomconfig_whois"><value>moderators</value></field></x></query></iq>`)
	if r := alice.Expect(t, "config result", iqResult("submit")); r.Get("type") != "result" {
		t.Fatalf("submit: %v", r)
	}

	join(t, bob, "lobby", "Bob", "")
	// Bob first sees Alice, without her JID (semi-anonymous), then himself.
	a := bob.Expect(t, "alice's presence", presenceFrom(room+"/Alice", ""))
	if it := item(a); it == nil || it.Get("jid") != "" || it.Get("affiliation") != "owner" {
		t.Fatalf("alice as bob sees her: %v", a)
	}
	self := bob.Expect(t, "own presence", presenceFrom(room+"/Bob", ""))
	if got := codes(self); !slices.Contains(got, "110") || slices.Contains(got, "201") || slices.Contains(got, "100") {
		t.Fatalf("bob's status codes %v, want 110 only", got)
	}
	bob.Expect(t, "subject", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(xmpp.NSClient, "subject") != nil
	})
	// Alice, a moderator, sees Bob's real JID.
	b := alice.Expect(t, "bob's arrival", presenceFrom(room+"/Bob", ""))
	if it := item(b); it == nil || it.Get("jid") != bob.JID.String() || it.Get("role") != "participant" {
		t.Fatalf("bob as alice sees him: %v", b)
	}

	// Discovery: the server lists the service, the service the room.
	alice.SendRaw(t, `<iq type="get" id="srv" to="`+testenv.Domain+`"><query xmlns="`+muc.NSItems+`"/></iq>`)
	if r := alice.Expect(t, "server items", iqResult("srv")); !strings.Contains(r.String(), `jid="`+service+`"`) {
		t.Fatalf("server items: %v", r)
	}
	alice.SendRaw(t, `<iq type="get" id="rooms" to="`+service+`"><query xmlns="`+muc.NSItems+`"/></iq>`)
	if r := alice.Expect(t, "rooms", iqResult("rooms")); !strings.Contains(r.String(), `jid="`+room+`"`) || !strings.Contains(r.String(), "The Lobby") {
		t.Fatalf("service items: %v", r)
	}
	alice.SendRaw(t, `<iq type="get" id="info" to="`+room+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
	info := alice.Expect(t, "room info", iqResult("info")).String()
	for _, f := range []string{"muc_temporary", "muc_public", "muc_open", "muc_semianonymous", muc.NSRoomInf} {
		if !strings.Contains(info, f) {
			t.Errorf("room info lacks %s: %s", f, info)
		}
	}
}

// TestMessages: groupchat reaches every occupant with the sender's room
// JID and the original id; newcomers get history as asked; private
// messages go through room JIDs.
func TestMessages(t *testing.T) {
	s := start(t)
	alice, bob, carol := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol")
	room := "talk@" + service
	create(t, alice, "talk", "alice")
	join(t, bob, "talk", "bob", "")
	bob.Expect(t, "own presence", presenceFrom(room+"/bob", ""))
	for i := 1; i <= 3; i++ {
		alice.SendRaw(t, fmt.Sprintf(`<message type="groupchat" id="m%d" to="%s"><body>hello %d</body></message>`, i, room, i))
	}
	for _, c := range []*testenv.Client{alice, bob} {
		m := c.Expect(t, "message 3", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == "m3" })
		if m.Get("from") != room+"/alice" || m.Get("type") != "groupchat" || m.Get("to") != c.JID.String() {
			t.Errorf("%s got %v", c.JID, m)
		}
	}
	// History: the last two only.
	join(t, carol, "talk", "carol", `<x xmlns="`+muc.NS+`"><history maxstanzas="2"/></x>`)
	var got []string
	for len(got) < 2 {
		m := carol.Expect(t, "history", func(el *xmpp.Element) bool {
			return el.Local == "message" && el.Child(xmpp.NSClient, "body") != nil
		})
		if m.Child(muc.NSDelay, "delay") == nil {
			t.Errorf("history without a delay stamp: %v", m)
		}
		got = append(got, m.Child(xmpp.NSClient, "body").Text())
	}
	if strings.Join(got, ",") != "hello 2,hello 3" {
		t.Errorf("history %q, want the last two", got)
	}
	// A private message through the room.
	bob.SendRaw(t, `<message type="chat" id="pm" to="`+room+`/carol"><body>psst</body></message>`)
	pm := carol.Expect(t, "private message", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == "pm" })
	if pm.Get("from") != room+"/bob" {
		t.Errorf("private message from %q", pm.Get("from"))
	}
	// Not an occupant: refused.
	dave := user(t, s, "dave")
	dave.SendRaw(t, `<message type="groupchat" id="x" to="`+room+`"><body>hi</body></message>`)
	if e := dave.Expect(t, "refusal", func(el *xmpp.Element) bool { return el.Get("id") == "x" }); errorCondition(e) != "not-acceptable" {
		t.Errorf("groupchat from outside: %v", e)
	}
}

// TestNicks: a taken nick is a conflict, a nick change is announced with
// 303, and leaving (or a dead stream) is announced to those who stay.
func TestNicks(t *testing.T) {
	s := start(t)
	alice, bob, carol := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol")
	room := "nicks@" + service
	create(t, alice, "nicks", "alice")
	join(t, bob, "nicks", "alice", "")
	if e := bob.Expect(t, "conflict", presenceFrom(room+"/alice", "error")); errorCondition(e) != "conflict" {
		t.Fatalf("taken nick: %v", e)
	}
	join(t, bob, "nicks", "bob", "")
	alice.Expect(t, "bob", presenceFrom(room+"/bob", ""))
	join(t, bob, "nicks", "robert", "")
	u := alice.Expect(t, "nick change", presenceFrom(room+"/bob", "unavailable"))
	if it := item(u); !slices.Contains(codes(u), "303") || it == nil || it.Get("nick") != "robert" {
		t.Fatalf("nick change: %v", u)
	}
	alice.Expect(t, "new nick", presenceFrom(room+"/robert", ""))
	// Self-ping (XEP-0410).
	bob.SendRaw(t, `<iq type="get" id="sp" to="`+room+`/robert"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if r := bob.Expect(t, "self-ping", iqResult("sp")); r.Get("type") != "result" {
		t.Errorf("self-ping: %v", r)
	}
	bob.SendRaw(t, `<presence type="unavailable" to="`+room+`/robert"/>`)
	bob.Expect(t, "own exit", presenceFrom(room+"/robert", "unavailable"))
	alice.Expect(t, "bob leaves", presenceFrom(room+"/robert", "unavailable"))
	bob.SendRaw(t, `<iq type="get" id="sp2" to="`+room+`/robert"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if r := bob.Expect(t, "self-ping after leaving", iqResult("sp2")); errorCondition(r) != "not-acceptable" {
		t.Errorf("self-ping after leaving: %v", r)
	}
	// A stream that dies leaves the room.
	join(t, carol, "nicks", "carol", "")
	alice.Expect(t, "carol", presenceFrom(room+"/carol", ""))
	carol.Abort()
	alice.Expect(t, "carol gone", presenceFrom(room+"/carol", "unavailable"))
}

// TestEntryRules: password, members-only and the occupant limit refuse
// with the XEP's conditions; the owner destroys the room and occupants
// learn the reason.
func TestEntryRules(t *testing.T) {
	s := start(t)
	alice, bob, carol := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol")
	room := "rules@" + service
	create(t, alice, "rules", "alice")
	configure(t, alice, room, "pw", "muc#roomconfig_passwordprotectedroom", "1", "muc#roomconfig_roomsecret", "s3cret", "muc#roomconfig_maxusers", "2")
	join(t, bob, "rules", "bob", "")
	if e := bob.Expect(t, "no password", presenceFrom(room+"/bob", "error")); errorCondition(e) != "not-authorized" {
		t.Fatalf("no password: %v", e)
	}
	join(t, bob, "rules", "bob", `<x xmlns="`+muc.NS+`"><password>s3cret</password></x>`)
	bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
	join(t, carol, "rules", "carol", `<x xmlns="`+muc.NS+`"><password>s3cret</password></x>`)
	if e := carol.Expect(t, "full", presenceFrom(room+"/carol", "error")); errorCondition(e) != "service-unavailable" {
		t.Fatalf("full room: %v", e)
	}
	configure(t, alice, room, "mo", "muc#roomconfig_membersonly", "1", "muc#roomconfig_passwordprotectedroom", "0")
	bob.SendRaw(t, `<presence type="unavailable" to="`+room+`/bob"/>`)
	bob.Expect(t, "out", presenceFrom(room+"/bob", "unavailable"))
	join(t, carol, "rules", "carol", "")
	if e := carol.Expect(t, "members only", presenceFrom(room+"/carol", "error")); errorCondition(e) != "registration-required" {
		t.Fatalf("members-only: %v", e)
	}
	// Only the owner configures.
	carol.SendRaw(t, `<iq type="get" id="nope" to="`+room+`"><query xmlns="`+muc.NSOwner+`"/></iq>`)
	if e := carol.Expect(t, "forbidden", iqResult("nope")); errorCondition(e) != "forbidden" {
		t.Fatalf("config by a stranger: %v", e)
	}
	alice.SendRaw(t, `<iq type="set" id="bye" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><destroy jid="elsewhere@`+service+`"><reason>moving</reason></destroy></query></iq>`)
	d := alice.Expect(t, "destroyed", presenceFrom(room+"/alice", "unavailable"))
	if !strings.Contains(d.String(), "moving") || !strings.Contains(d.String(), "elsewhere@") {
		t.Fatalf("destroy presence: %v", d)
	}
	alice.Expect(t, "destroy result", iqResult("bye"))
	alice.SendRaw(t, `<iq type="get" id="gone" to="`+room+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
	if e := alice.Expect(t, "gone", iqResult("gone")); errorCondition(e) != "item-not-found" {
		t.Fatalf("destroyed room still answers: %v", e)
	}
}

// TestPersistence: a persistent room keeps its configuration, subject and
// owner across a restart of the server, on both backends; a temporary one
// does not.
func TestPersistence(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		s := startOn(t, backend, store)
		alice := user(t, s, "alice")
		room := "kept@" + service
		create(t, alice, "kept", "alice")
		configure(t, alice, room, "p", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_roomname", "Kept", "muc#roomconfig_membersonly", "1")
		alice.SendRaw(t, `<message type="groupchat" to="`+room+`"><subject>Plans</subject></message>`)
		alice.Expect(t, "subject", func(el *xmpp.Element) bool { return el.Local == "message" && el.Child(xmpp.NSClient, "subject") != nil })
		create(t, alice, "gone", "alice")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}

		s2 := startOn(t, backend, store)
		alice2 := s2.Dial(t, alice.JID.Bare(), "pw", "r2")
		alice2.SendRaw(t, `<iq type="get" id="info" to="`+room+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
		info := alice2.Expect(t, "info", iqResult("info")).String()
		for _, want := range []string{"Kept", "Plans", "muc_persistent", "muc_membersonly"} {
			if !strings.Contains(info, want) {
				t.Errorf("after a restart the room info lacks %q: %s", want, info)
			}
		}
		// Still hers: she may configure it, and enter although it is
		// members-only.
		alice2.SendRaw(t, `<iq type="get" id="cfg" to="`+room+`"><query xmlns="`+muc.NSOwner+`"/></iq>`)
		if r := alice2.Expect(t, "config form", iqResult("cfg")); r.Get("type") != "result" {
			t.Errorf("owner after restart: %v", r)
		}
		join(t, alice2, "kept", "alice", "")
		alice2.Expect(t, "in", presenceFrom(room+"/alice", ""))
		alice2.SendRaw(t, `<iq type="get" id="g" to="gone@`+service+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
		if e := alice2.Expect(t, "temporary room gone", iqResult("g")); errorCondition(e) != "item-not-found" {
			t.Errorf("a temporary room survived: %v", e)
		}
	})
}

// TestModeration: kicks and bans by moderators and admins, with their
// status codes and reasons; voice in a moderated room; the ban list; the
// last owner stays.
func TestModeration(t *testing.T) {
	s := start(t)
	alice, bob, carol, dave := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol"), user(t, s, "dave")
	room := "mod@" + service
	create(t, alice, "mod", "alice")
	for _, c := range []struct {
		c    *testenv.Client
		nick string
	}{{bob, "bob"}, {carol, "carol"}} {
		join(t, c.c, "mod", c.nick, "")
		c.c.Expect(t, "in", presenceFrom(room+"/"+c.nick, ""))
	}
	admin := func(c *testenv.Client, id, typ, items string) *xmpp.Element {
		t.Helper()
		c.SendRaw(t, `<iq type="`+typ+`" id="`+id+`" to="`+room+`"><query xmlns="`+muc.NSAdmin+`">`+items+`</query></iq>`)
		return c.Expect(t, id, iqResult(id))
	}
	if e := admin(bob, "k0", "set", `<item nick="carol" role="none"/>`); errorCondition(e) != "forbidden" {
		t.Fatalf("a participant kicks: %v", e)
	}
	if r := admin(alice, "k1", "set", `<item nick="bob" role="none"><reason>spam</reason></item>`); r.Get("type") != "result" {
		t.Fatalf("kick: %v", r)
	}
	k := bob.Expect(t, "kicked", presenceFrom(room+"/bob", "unavailable"))
	if cs := codes(k); !slices.Contains(cs, "307") || !slices.Contains(cs, "110") || !strings.Contains(k.String(), "spam") {
		t.Fatalf("kicked presence: %v", k)
	}
	if cs := codes(carol.Expect(t, "bob kicked", presenceFrom(room+"/bob", "unavailable"))); !slices.Contains(cs, "307") {
		t.Fatalf("others see the kick with %v", cs)
	}
	// A ban removes carol with 301 and keeps her out.
	admin(alice, "b1", "set", `<item jid="`+carol.JID.Bare().String()+`" affiliation="outcast"><reason>rude</reason></item>`)
	if cs := codes(carol.Expect(t, "banned", presenceFrom(room+"/carol", "unavailable"))); !slices.Contains(cs, "301") {
		t.Fatalf("banned with %v", cs)
	}
	join(t, carol, "mod", "carol", "")
	if e := carol.Expect(t, "refused", presenceFrom(room+"/carol", "error")); errorCondition(e) != "forbidden" {
		t.Fatalf("a banned user joins: %v", e)
	}
	if l := admin(alice, "l1", "get", `<item affiliation="outcast"/>`); !strings.Contains(l.String(), carol.JID.Bare().String()) || !strings.Contains(l.String(), "rude") {
		t.Fatalf("ban list: %v", l)
	}
	if e := admin(bob, "l2", "get", `<item affiliation="outcast"/>`); errorCondition(e) != "forbidden" {
		t.Fatalf("ban list for a stranger: %v", e)
	}
	// Moderated: a newcomer is a visitor until given voice.
	configure(t, alice, room, "m", "muc#roomconfig_moderatedroom", "1")
	join(t, dave, "mod", "dave", "")
	if it := item(dave.Expect(t, "in", presenceFrom(room+"/dave", ""))); it == nil || it.Get("role") != "visitor" {
		t.Fatalf("dave's role: %v", it)
	}
	dave.SendRaw(t, `<message type="groupchat" id="v1" to="`+room+`"><body>hi</body></message>`)
	if e := dave.Expect(t, "no voice", func(el *xmpp.Element) bool { return el.Get("id") == "v1" }); errorCondition(e) != "forbidden" {
		t.Fatalf("a visitor speaks: %v", e)
	}
	admin(alice, "v", "set", `<item nick="dave" role="participant"/>`)
	dave.Expect(t, "voiced", func(el *xmpp.Element) bool {
		it := item(el)
		return el.Local == "presence" && el.Get("from") == room+"/dave" && it != nil && it.Get("role") == "participant"
	})
	dave.SendRaw(t, `<message type="groupchat" id="v2" to="`+room+`"><body>hi</body></message>`)
	if m := alice.Expect(t, "dave speaks", func(el *xmpp.Element) bool { return el.Get("id") == "v2" }); m.Get("type") != "groupchat" {
		t.Fatalf("voiced message: %v", m)
	}
	if e := admin(alice, "o", "set", `<item jid="`+alice.JID.Bare().String()+`" affiliation="none"/>`); errorCondition(e) != "conflict" {
		t.Fatalf("the last owner steps down: %v", e)
	}
}

// TestGroupFromStorage: a group written to storage while the server runs
// (as xmppctl room create does) is found the first time it is addressed;
// its members enter and see real JIDs, others are refused.
func TestGroupFromStorage(t *testing.T) {
	store := testenv.OpenStore(t, "sqlite")
	s := startOn(t, "sqlite", store)
	alice, bob, eve := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "eve")
	room := "team@" + service
	ctx := t.Context()
	if err := store.SaveRoom(ctx, storage.Room{JID: room, Config: muc.GroupConfig("Team")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testenv.Client{alice, bob} {
		if err := store.SetAffiliation(ctx, room, storage.Affiliation{JID: c.JID.Bare().String(), Affiliation: storage.AffMember}); err != nil {
			t.Fatal(err)
		}
	}
	join(t, eve, "team", "eve", "")
	if e := eve.Expect(t, "refused", presenceFrom(room+"/eve", "error")); errorCondition(e) != "registration-required" {
		t.Fatalf("a stranger joins a group: %v", e)
	}
	join(t, alice, "team", "alice", "")
	if cs := codes(alice.Expect(t, "in", presenceFrom(room+"/alice", ""))); !slices.Contains(cs, "100") || slices.Contains(cs, "201") {
		t.Fatalf("joining a group: status codes %v, want 100 (non-anonymous) and no 201", cs)
	}
	join(t, bob, "team", "bob", "")
	if it := item(bob.Expect(t, "alice", presenceFrom(room+"/alice", ""))); it == nil || it.Get("jid") != alice.JID.String() || it.Get("affiliation") != "member" {
		t.Fatalf("bob sees alice as %v", it)
	}
}

// TestInvitations: a mediated invitation reaches the invitee from the room
// and, in a members-only room, lets it in; a decline goes back to the
// inviter; only occupants invite.
func TestInvitations(t *testing.T) {
	s := start(t)
	alice, bob, carol := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol")
	room := "club@" + service
	create(t, alice, "club", "alice")
	configure(t, alice, room, "mo", "muc#roomconfig_membersonly", "1")
	// Invitations go to bare JIDs: to available resources (RFC 6121 §8.5.2).
	for _, c := range []*testenv.Client{alice, bob, carol} {
		c.SendRaw(t, `<presence/>`)
		c.Expect(t, "own presence", presenceFrom(c.JID.String(), ""))
	}
	invite := func(from *testenv.Client, to string) {
		from.SendRaw(t, `<message to="`+room+`"><x xmlns="`+muc.NSUser+`"><invite to="`+to+`"><reason>join us</reason></invite></x></message>`)
	}
	invite(alice, bob.JID.Bare().String())
	inv := bob.Expect(t, "invitation", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("from") == room })
	x := inv.Child(muc.NSUser, "x")
	if x == nil || x.Child(muc.NSUser, "invite") == nil || x.Child(muc.NSUser, "invite").Get("from") != alice.JID.Bare().String() ||
		!strings.Contains(inv.String(), "join us") {
		t.Fatalf("invitation: %v", inv)
	}
	join(t, bob, "club", "bob", "")
	bob.Expect(t, "in, as a member", presenceFrom(room+"/bob", ""))

	invite(alice, carol.JID.Bare().String())
	carol.Expect(t, "invitation", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("from") == room })
	carol.SendRaw(t, `<message to="`+room+`"><x xmlns="`+muc.NSUser+`"><decline to="`+alice.JID.Bare().String()+`"><reason>busy</reason></decline></x></message>`)
	d := alice.Expect(t, "decline", func(el *xmpp.Element) bool {
		x := el.Child(muc.NSUser, "x")
		return el.Local == "message" && x != nil && x.Child(muc.NSUser, "decline") != nil
	})
	if dd := d.Child(muc.NSUser, "x").Child(muc.NSUser, "decline"); dd.Get("from") != carol.JID.Bare().String() || !strings.Contains(d.String(), "busy") {
		t.Fatalf("decline: %v", d)
	}
	// carol, not in the room, may not invite.
	carol.SendRaw(t, `<message id="ci" to="`+room+`"><x xmlns="`+muc.NSUser+`"><invite to="x@localhost"/></x></message>`)
	if e := carol.Expect(t, "refused", func(el *xmpp.Element) bool { return el.Get("id") == "ci" }); errorCondition(e) != "not-acceptable" {
		t.Fatalf("an outsider invites: %v", e)
	}
}

// TestRoomListPaging: the service's room list pages with XEP-0059 (max,
// after, before) and says how many rooms there are.
func TestRoomListPaging(t *testing.T) {
	s := start(t)
	alice := user(t, s, "alice")
	for _, r := range []string{"r1", "r2", "r3", "r4", "r5"} {
		create(t, alice, r, "alice")
	}
	page := func(id, set string) (jids []string, first, last, count string) {
		t.Helper()
		alice.SendRaw(t, `<iq type="get" id="`+id+`" to="`+service+`"><query xmlns="`+muc.NSItems+`"><set xmlns="`+muc.NSRSM+`">`+set+`</set></query></iq>`)
		res := alice.Expect(t, id, iqResult(id))
		q := res.Child(muc.NSItems, "query")
		if q == nil {
			t.Fatalf("%s: %v", id, res)
		}
		for _, it := range q.Elements() {
			if it.Local == "item" {
				jids = append(jids, strings.TrimSuffix(it.Get("jid"), "@"+service))
			}
		}
		rs := q.Child(muc.NSRSM, "set")
		if rs == nil {
			t.Fatalf("%s: no set in %v", id, res)
		}
		text := func(n string) string {
			if el := rs.Child(muc.NSRSM, n); el != nil {
				return strings.TrimSuffix(el.Text(), "@"+service)
			}
			return ""
		}
		return jids, text("first"), text("last"), text("count")
	}
	jids, first, last, count := page("p1", `<max>2</max>`)
	if strings.Join(jids, ",") != "r1,r2" || first != "r1" || last != "r2" || count != "5" {
		t.Fatalf("first page: %v %s %s %s", jids, first, last, count)
	}
	jids, _, _, _ = page("p2", `<max>2</max><after>r2@`+service+`</after>`)
	if strings.Join(jids, ",") != "r3,r4" {
		t.Fatalf("second page: %v", jids)
	}
	jids, _, _, _ = page("p3", `<max>2</max><before/>`)
	if strings.Join(jids, ",") != "r4,r5" {
		t.Fatalf("last page: %v", jids)
	}
	jids, _, _, count = page("p4", `<max>0</max>`)
	if len(jids) != 0 || count != "5" {
		t.Fatalf("count only: %v %s", jids, count)
	}
}

// TestRoomChanges: a configuration change is announced (104); making the
// room members-only removes non-members (322); two sessions of one account
// share a nick and the occupant leaves with the last; history honours
// maxchars; shutting the server down takes everyone out with 332.
func TestRoomChanges(t *testing.T) {
	s := start(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	room := "changes@" + service
	create(t, alice, "changes", "alice")
	alice.SendRaw(t, `<message type="groupchat" to="`+room+`"><body>before</body></message>`)
	alice.Expect(t, "reflection", func(el *xmpp.Element) bool { return el.Local == "message" && el.Child(xmpp.NSClient, "body") != nil })

	// Two sessions of bob, one nick.
	bob2 := s.Dial(t, bob.JID.Bare(), "pw", "r2")
	join(t, bob, "changes", "bob", `<x xmlns="`+muc.NS+`"><history maxchars="0"/></x>`)
	bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
	join(t, bob2, "changes", "bob", "")
	bob2.Expect(t, "in too", presenceFrom(room+"/bob", ""))
	bob2.Expect(t, "history", func(el *xmpp.Element) bool { return el.Local == "message" && el.Child(xmpp.NSClient, "body") != nil })
	bob2.SendRaw(t, `<presence type="unavailable" to="`+room+`/bob"/>`)
	bob2.Expect(t, "out", presenceFrom(room+"/bob", "unavailable"))
	// bob is still there: a message reaches his first session, and it got
	// no history (maxchars 0).
	alice.SendRaw(t, `<message type="groupchat" id="still" to="`+room+`"><body>still here?</body></message>`)
	m := bob.Expect(t, "message", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(xmpp.NSClient, "body") != nil
	})
	if m.Get("id") != "still" {
		t.Fatalf("bob's first message is %v, want the live one (no history with maxchars=0)", m)
	}

	configure(t, alice, room, "c", "muc#roomconfig_roomname", "Changed")
	if c := bob.Expect(t, "104", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("from") == room }); !slices.Contains(codes(c), "104") {
		t.Fatalf("configuration change: %v", c)
	}
	configure(t, alice, room, "mo", "muc#roomconfig_membersonly", "1")
	if u := bob.Expect(t, "removed", presenceFrom(room+"/bob", "unavailable")); !slices.Contains(codes(u), "322") {
		t.Fatalf("members-only removal: %v", u)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.Shutdown(ctx)
	if u := alice.Expect(t, "shutdown", presenceFrom(room+"/alice", "unavailable")); !slices.Contains(codes(u), "332") {
		t.Fatalf("shutdown: %v", u)
	}
}

// TestHistorySince: since and seconds select history by time.
func TestHistorySince(t *testing.T) {
	s := start(t)
	alice := user(t, s, "alice")
	room := "since@" + service
	create(t, alice, "since", "alice")
	alice.SendRaw(t, `<message type="groupchat" to="`+room+`"><body>old news</body></message>`)
	alice.Expect(t, "reflection", func(el *xmpp.Element) bool { return el.Local == "message" && el.Child(xmpp.NSClient, "body") != nil })
	for _, tc := range []struct {
		nick, history string
		want          bool
	}{
		{"future", `<history since="2999-01-01T00:00:00Z"/>`, false},
		{"past", `<history since="1970-01-01T00:00:00Z"/>`, true},
		{"hour", `<history seconds="3600"/>`, true},
	} {
		c := s.Dial(t, alice.JID.Bare(), "pw", tc.nick)
		join(t, c, "since", tc.nick, `<x xmlns="`+muc.NS+`">`+tc.history+`</x>`)
		// Own presence, then history (if any), then the subject, last.
		c.Expect(t, "in", presenceFrom(room+"/"+tc.nick, ""))
		next := c.Expect(t, "history or subject", func(el *xmpp.Element) bool { return el.Local == "message" })
		got := next.Child(xmpp.NSClient, "body") != nil
		if got != tc.want {
			t.Errorf("%s: history given %v, want %v (%v)", tc.history, got, tc.want, next)
		}
	}
}

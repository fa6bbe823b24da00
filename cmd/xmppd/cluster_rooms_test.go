package main

import (
	"context"
	"encoding/xml"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// TestClusterRooms: a members-only room stored in Postgres, its occupants
// on three nodes. The first to join (bob, on node B) makes B its host;
// alice (node A) and carol (node C) join through their own nodes and the
// three talk. B is then killed with SIGKILL: a message alice sends
// meanwhile waits for the takeover, another node takes the room over
// with its occupants (alice and carol stay in, and are told that bob
// left) and its history, and bob, signing in again on node C, joins it as
// a member and gets the history from before the crash.
func TestClusterRooms(t *testing.T) {
	dsn := pgtest.DSN(t)
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	ctx := context.Background()
	a := startNode(t, "node-a", dsn, addr, prefix, "")
	st := clusterStore(t, dsn)
	addAccounts(t, st, "@localhost", "alice", "bob", "carol", "dave")
	const room = "team@conference.localhost"
	err := st.SaveRoom(ctx, storage.Room{JID: room, Created: time.Now().UTC(), Config: storage.RoomConfig{
		Name: "Team", Persistent: true, MembersOnly: true, Public: true, WhoIs: "moderators",
		HistoryLength: 20, AllowPM: "anyone"}})
	if err != nil {
		t.Fatal(err)
	}
	for u, aff := range map[string]string{"alice": storage.AffOwner, "bob": storage.AffMember, "carol": storage.AffMember, "dave": storage.AffMember} {
		if err := st.SetAffiliation(ctx, room, storage.Affiliation{JID: u + "@localhost", Affiliation: aff}); err != nil {
			t.Fatal(err)
		}
	}
	b, c := startNode(t, "node-b", dsn, addr, prefix, ""), startNode(t, "node-c", dsn, addr, prefix, "")

	login := func(s *server, user string) *mxmpp.Session {
		t.Helper()
		ms, _, err := s.login(t, user+"@localhost", "pw")
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.Send(ctx, xmlPresence()); err != nil {
			t.Fatal(err)
		}
		return ms
	}
	occupant := func(nick string) string { return room + "/" + nick }
	join := func(ms *mxmpp.Session, nick string) {
		t.Helper()
		x := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
		if err := ms.Send(ctx, stanza.Presence{To: jid.MustParse(occupant(nick))}.Wrap(x)); err != nil {
			t.Fatal(err)
		}
		expect(t, ms, func(el *xmpp.Element) bool { // the subject ends the join (XEP-0045 §7.2.15)
			return el.Local == "message" && el.Child("", "subject") != nil
		})
	}
	say := func(ms *mxmpp.Session, body string) {
		t.Helper()
		msg := stanza.Message{To: jid.MustParse(room), Type: stanza.GroupChatMessage}
		if err := ms.Send(ctx, msg.Wrap(xmlBody(body))); err != nil {
			t.Fatal(err)
		}
	}
	heard := func(ms *mxmpp.Session, from, body string) *xmpp.Element {
		t.Helper()
		return expect(t, ms, func(el *xmpp.Element) bool {
			bd := el.Child("", "body")
			return el.Local == "message" && el.Get("type") == "groupchat" && bd != nil && bd.Text() == body && el.Get("from") == occupant(from)
		})
	}
	present := func(ms *mxmpp.Session, nick, typ string) {
		t.Helper()
		expect(t, ms, func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("from") == occupant(nick) && el.Get("type") == typ
		})
	}

	bob := login(b, "bob")
	join(bob, "bob") // node B takes the room's lease
	alice := login(a, "alice")
	join(alice, "alice")
	present(bob, "alice", "")
	carol := login(c, "carol")
	join(carol, "carol")
	present(alice, "carol", "")
	present(bob, "carol", "")
	dave := login(c, "dave")
	join(dave, "dave")
	present(alice, "dave", "")

	// A room made by joining it (XEP-0045 §10.1): dave, on node C, makes
	// it (C takes its lease) and accepts the instant configuration;
	// alice joins it through node A and they talk.
	const scratch = "scratch@conference.localhost"
	x := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
	if err := dave.Send(ctx, stanza.Presence{To: jid.MustParse(scratch + "/dave")}.Wrap(x)); err != nil {
		t.Fatal(err)
	}
	expect(t, dave, func(el *xmpp.Element) bool { // status 201: a new room
		ux := el.Child("http://jabber.org/protocol/muc#user", "x")
		if el.Local != "presence" || ux == nil {
			return false
		}
		for _, n := range ux.Elements() {
			if n.Local == "status" && n.Get("code") == "201" {
				return true
			}
		}
		return false
	})
	form := xmlstream.Wrap(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "jabber:x:data", Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "submit"}}}),
		xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc#owner", Local: "query"}})
	if err := dave.Send(ctx, stanza.IQ{To: jid.MustParse(scratch), Type: stanza.SetIQ, ID: "instant"}.Wrap(form)); err != nil {
		t.Fatal(err)
	}
	if el := expect(t, dave, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == "instant" }); el.Get("type") != "result" {
		t.Fatalf("the instant room's configuration: %s", el.Bytes(xmpp.NSClient))
	}
	x = xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
	if err := alice.Send(ctx, stanza.Presence{To: jid.MustParse(scratch + "/alice")}.Wrap(x)); err != nil {
		t.Fatal(err)
	}
	expect(t, dave, func(el *xmpp.Element) bool { return el.Local == "presence" && el.Get("from") == scratch+"/alice" })
	if err := dave.Send(ctx, stanza.Message{To: jid.MustParse(scratch), Type: stanza.GroupChatMessage}.Wrap(xmlBody("a room of our own"))); err != nil {
		t.Fatal(err)
	}
	expect(t, alice, func(el *xmpp.Element) bool {
		bd := el.Child("", "body")
		return el.Local == "message" && el.Get("from") == scratch+"/dave" && bd != nil && bd.Text() == "a room of our own"
	})

	say(alice, "from node A, through B")
	heard(bob, "alice", "from node A, through B")
	heard(carol, "alice", "from node A, through B")
	say(carol, "from node C")
	heard(alice, "carol", "from node C")
	heard(bob, "carol", "from node C")

	// The admin API on node C, which does not host the room, asks the
	// host (B) for it: its occupants, and an announcement from the app.
	code, out := xmppctl(t, "-config", filepath.Join(c.data, "xmppd.yaml"), "api-token", "create", "app")
	if code != 0 {
		t.Fatalf("xmppctl api-token create: exit %d: %s", code, out)
	}
	token := strings.TrimSpace(out)
	api := func(s *server, method, path, body string) (int, map[string]any) {
		t.Helper()
		code, v, _ := apiCall(t, token, method, "http://"+s.admin+"/api/v1"+path, body)
		return code, v
	}
	if code, v := api(c, "GET", "/rooms/"+room, ""); code != 200 || v["occupants"] != float64(4) {
		t.Fatalf("GET the room on a node that does not host it: %d %v", code, v)
	}
	if code, v := api(c, "POST", "/messages", `{"to":{"rooms":["`+room+`"]},"body":"from the app"}`); code != 200 {
		t.Fatalf("POST a message to the room on a node that does not host it: %d %v", code, v)
	}
	for _, ms := range []*mxmpp.Session{alice, bob, carol} {
		expect(t, ms, func(el *xmpp.Element) bool {
			bd := el.Child("", "body")
			return el.Local == "message" && el.Get("from") == room && bd != nil && bd.Text() == "from the app"
		})
	}

	// The service's room list on node C, which does not host the room,
	// has it (from storage).
	q := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/disco#items", Local: "query"}})
	if err := dave.Send(ctx, stanza.IQ{To: jid.MustParse("conference.localhost"), Type: stanza.GetIQ, ID: "items"}.Wrap(q)); err != nil {
		t.Fatal(err)
	}
	items := expect(t, dave, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == "items" })
	listed := false
	if qe := items.Child("http://jabber.org/protocol/disco#items", "query"); qe != nil {
		for _, it := range qe.Elements() {
			listed = listed || it.Get("jid") == room
		}
	}
	if !listed {
		t.Errorf("the room list on a node that does not host the room: %s", items.Bytes(xmpp.NSClient))
	}

	// The room's archive has both (the host stores its messages within
	// milliseconds, in batches).
	await(t, "the room's archive to hold two messages", func() bool {
		page, err := st.QueryArchive(ctx, room, storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Messages) == 2
	})
	// The host dies. alice's next message waits until B's lease lapses
	// with its node key (TTL 2 s), then A takes the room over.
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	say(alice, "while the room moves")
	heard(carol, "alice", "while the room moves")
	// The new host knows bob's session died with B, and says so.
	present(alice, "bob", "unavailable")
	say(carol, "after the takeover")
	heard(alice, "carol", "after the takeover")

	// bob comes back on node A: still a member (the room is members-only),
	// and the history has what was said before the crash.
	bob2 := login(a, "bob")
	x = xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
	if err := bob2.Send(ctx, stanza.Presence{To: jid.MustParse(occupant("bob"))}.Wrap(x)); err != nil {
		t.Fatal(err)
	}
	var history []string
	expect(t, bob2, func(el *xmpp.Element) bool {
		if el.Local == "presence" && el.Get("type") == "error" {
			t.Fatalf("bob's join refused: %s", el.Bytes(xmpp.NSClient))
		}
		if bd := el.Child("", "body"); el.Local == "message" && bd != nil && el.Child("urn:xmpp:delay", "delay") != nil {
			history = append(history, bd.Text())
		}
		return el.Local == "message" && el.Child("", "subject") != nil
	})
	want := "from node A, through B|from node C|while the room moves|after the takeover"
	if got := strings.Join(history, "|"); got != want {
		t.Errorf("bob's history after the takeover:\n got %s\nwant %s", got, want)
	}
	present(alice, "bob", "")
	say(bob2, "back")
	heard(alice, "bob", "back")
	heard(carol, "bob", "back")

	// carol's stream ends on node C, which tells the host (A) that she
	// left; then node C dies, and A takes dave, whose session died with
	// it, out of the room.
	if err := carol.Close(); err != nil {
		t.Fatal(err)
	}
	present(alice, "carol", "unavailable")
	present(bob2, "carol", "unavailable")
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	present(alice, "dave", "unavailable")
	present(bob2, "dave", "unavailable")
	if code, v := api(a, "GET", "/rooms/"+room, ""); code != 200 || v["occupants"] != float64(2) {
		t.Fatalf("the room's occupants at the end: %d %v", code, v)
	}
}

// TestClusterRoomHandover: the node hosting a room stops cleanly
// (SIGTERM, a rolling restart): its own occupant leaves, as with any
// session that ends, and the others stay recorded; the next stanza for
// the room makes the other node take it over with them, and they go on
// talking without joining again.
func TestClusterRoomHandover(t *testing.T) {
	dsn := pgtest.DSN(t)
	addr, prefix := redistest.Addr(t), redistest.Prefix(t)
	ctx := context.Background()
	a := startNode(t, "node-a", dsn, addr, prefix, "")
	st := clusterStore(t, dsn)
	addAccounts(t, st, "@localhost", "alice", "bob", "carol")
	const room = "lobby@conference.localhost"
	if err := st.SaveRoom(ctx, storage.Room{JID: room, Created: time.Now().UTC(), Config: storage.RoomConfig{
		Persistent: true, Public: true, WhoIs: "moderators", HistoryLength: 20, AllowPM: "anyone"}}); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "node-b", dsn, addr, prefix, "")
	enter := func(s *server, user string) *mxmpp.Session {
		t.Helper()
		ms, _, err := s.login(t, user+"@localhost", "pw")
		if err != nil {
			t.Fatal(err)
		}
		// Available first, as clients are: the registry, through which
		// other nodes reach a session, holds available sessions.
		if err := ms.Send(ctx, xmlPresence()); err != nil {
			t.Fatal(err)
		}
		x := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/muc", Local: "x"}})
		if err := ms.Send(ctx, stanza.Presence{To: jid.MustParse(room + "/" + user)}.Wrap(x)); err != nil {
			t.Fatal(err)
		}
		expect(t, ms, func(el *xmpp.Element) bool { return el.Local == "message" && el.Child("", "subject") != nil })
		return ms
	}
	heard := func(ms *mxmpp.Session, from, body string) {
		t.Helper()
		expect(t, ms, func(el *xmpp.Element) bool {
			if el.Local == "presence" && el.Get("from") == room+"/"+ms.LocalAddr().Localpart() && el.Get("type") == "unavailable" {
				t.Fatalf("%s was taken out of the room: %s", ms.LocalAddr(), el.Bytes(xmpp.NSClient))
			}
			bd := el.Child("", "body")
			return el.Local == "message" && el.Get("from") == room+"/"+from && bd != nil && bd.Text() == body
		})
	}
	bob := enter(b, "bob") // node B hosts the room
	alice := enter(a, "alice")
	carol := enter(a, "carol")
	expect(t, bob, func(el *xmpp.Element) bool { return el.Local == "presence" && el.Get("from") == room+"/carol" })

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	// bob's session ended with node B: alice is told he left.
	expect(t, alice, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == room+"/bob" && el.Get("type") == "unavailable"
	})
	// alice speaks without joining again: node A takes the room over,
	// with her and carol in it.
	if err := alice.Send(ctx, stanza.Message{To: jid.MustParse(room), Type: stanza.GroupChatMessage}.Wrap(xmlBody("still here?"))); err != nil {
		t.Fatal(err)
	}
	heard(carol, "alice", "still here?")
	heard(alice, "alice", "still here?")
}

package muc_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// archived is one result of a room archive query.
type archived struct {
	id   string
	msg  *xmpp.Element // the forwarded message
	body string
}

// queryRoom sends a query of room's archive with the given inner XML
// (form, RSM set, flip-page) and returns its results and the IQ that ends
// it (a result with <fin/>, or an error).
func queryRoom(t *testing.T, c *testenv.Client, room, qid, inner string) ([]archived, *xmpp.Element) {
	t.Helper()
	c.SendRaw(t, `<iq type="set" id="`+qid+`" to="`+room+`"><query xmlns="`+mam.NS+`" queryid="`+qid+`">`+inner+`</query></iq>`)
	var got []archived
	for range mam.DefaultMaxPage + 1 {
		el := c.Expect(t, "results of "+qid, func(el *xmpp.Element) bool {
			if el.Local == "iq" {
				return el.Get("id") == qid
			}
			res := el.Child(mam.NS, "result")
			return el.Local == "message" && res != nil && res.Get("queryid") == qid
		})
		if el.Local == "iq" {
			return got, el
		}
		if el.Get("from") != room {
			t.Fatalf("result from %q, want the room %s: %v", el.Get("from"), room, el)
		}
		res := el.Child(mam.NS, "result")
		fwd := res.Child(mam.NSForward, "forwarded")
		if fwd == nil || fwd.Child(mam.NSDelay, "delay") == nil {
			t.Fatalf("result without <forwarded/> and <delay/>: %v", el)
		}
		m := fwd.Child(xmpp.NSClient, "message")
		if m == nil {
			t.Fatalf("result without a message: %v", el)
		}
		a := archived{id: res.Get("id"), msg: m}
		if b := m.Child(xmpp.NSClient, "body"); b != nil {
			a.body = b.Text()
		}
		got = append(got, a)
	}
	t.Fatalf("%s: more results than a page holds", qid)
	return nil, nil
}

// fin returns a query's <fin/>, failing unless the IQ is a result.
func fin(t *testing.T, iq *xmpp.Element) *xmpp.Element {
	t.Helper()
	f := iq.Child(mam.NS, "fin")
	if iq.Get("type") != "result" || f == nil {
		t.Fatalf("query answered %v, want a result with <fin/>", iq)
	}
	return f
}

// rsmSet returns the first and last ids of a <fin/>'s set.
func rsmSet(f *xmpp.Element) (first, last string) {
	if set := f.Child(muc.NSRSM, "set"); set != nil {
		if el := set.Child(muc.NSRSM, "first"); el != nil {
			first = el.Text()
		}
		if el := set.Child(muc.NSRSM, "last"); el != nil {
			last = el.Text()
		}
	}
	return first, last
}

// roomStanzaIDs are the stanza-ids by room on a message.
func roomStanzaIDs(el *xmpp.Element, room string) []string {
	var ids []string
	for _, c := range el.Elements() {
		if c.Space == mam.NSSID && c.Local == "stanza-id" && c.Get("by") == room {
			ids = append(ids, c.Get("id"))
		}
	}
	return ids
}

// realJID is the jid of a forwarded message's muc#user item, if any.
func realJID(m *xmpp.Element) string {
	if it := item(m); it != nil {
		return it.Get("jid")
	}
	return ""
}

func hasFeature(info *xmpp.Element, f string) bool {
	return strings.Contains(info.String(), `var="`+f+`"`)
}

func roomInfo(t *testing.T, c *testenv.Client, room, id string) *xmpp.Element {
	t.Helper()
	c.SendRaw(t, `<iq type="get" id="`+id+`" to="`+room+`"><query xmlns="`+muc.NSInfo+`"/></iq>`)
	return c.Expect(t, "room info "+id, iqResult(id))
}

// TestRoomArchive: a persistent room archives its groupchat by default.
// Every occupant's copy carries the room's stanza-id, the one the archive
// has; a stanza-id by the room sent by a client is not kept; a subject
// change is not archived. An occupant pages through 120 messages forward
// and backward and gets each once, in order; a stranger may not read the
// archive. After a restart the archive still answers; destroying the room
// deletes it.
func TestRoomArchive(t *testing.T) {
	const n = 120
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		s := startOn(t, backend, store)
		alice, bob, dave := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "dave")
		room := "archived@" + service
		create(t, alice, "archived", "alice")
		configure(t, alice, room, "p", "muc#roomconfig_persistentroom", "1")
		info := roomInfo(t, alice, room, "info")
		for _, f := range []string{mam.NS, mam.NSSID} {
			if !hasFeature(info, f) {
				t.Errorf("a persistent room's info lacks %s: %v", f, info)
			}
		}
		join(t, bob, "archived", "bob", "")
		bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
		alice.Expect(t, "bob in", presenceFrom(room+"/bob", ""))

		alice.SendRaw(t, `<message type="groupchat" to="`+room+`"><subject>Plans</subject></message>`)
		bob.Expect(t, "subject", func(el *xmpp.Element) bool { return el.Child(xmpp.NSClient, "subject") != nil })
		var batch strings.Builder
		for i := range n {
			extra := ""
			if i == 0 {
				extra = `<stanza-id xmlns="` + mam.NSSID + `" by="` + room + `" id="forged"/>`
			}
			fmt.Fprintf(&batch, `<message type="groupchat" id="g%d" to="%s"><body>m%d</body>%s</message>`, i, room, i, extra)
		}
		alice.SendRaw(t, batch.String())
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("m%d", i))
		}
		stamped := make(map[string][]string) // by client: the ids on its copies
		for _, c := range []*testenv.Client{alice, bob} {
			for i := range n {
				m := c.Expect(t, fmt.Sprintf("g%d", i), func(el *xmpp.Element) bool {
					return el.Local == "message" && el.Get("id") == fmt.Sprintf("g%d", i)
				})
				ids := roomStanzaIDs(m, room)
				if len(ids) != 1 || ids[0] == "forged" {
					t.Fatalf("%s's copy of g%d has stanza-ids %q by the room, want one of the room's: %v", c.JID, i, ids, m)
				}
				stamped[c.JID.String()] = append(stamped[c.JID.String()], ids[0])
			}
		}
		if !slices.Equal(stamped[alice.JID.String()], stamped[bob.JID.String()]) {
			t.Fatal("alice's and bob's copies carry different stanza-ids")
		}
		ids := stamped[bob.JID.String()]

		// Forward, 50 at a time.
		var fwd []archived
		after := ""
		for page := 0; ; page++ {
			if page > n/50+1 {
				t.Fatal("forward paging does not end")
			}
			set := `<set xmlns="` + muc.NSRSM + `"><max>50</max>`
			if after != "" {
				set += `<after>` + after + `</after>`
			}
			got, iq := queryRoom(t, bob, room, fmt.Sprintf("f%d", page), set+`</set>`)
			f := fin(t, iq)
			fwd = append(fwd, got...)
			if f.Get("complete") == "true" {
				break
			}
			_, after = rsmSet(f)
		}
		checkArchived(t, "forward", fwd, want, ids)
		for _, a := range fwd {
			if a.msg.Get("from") != room+"/alice" || a.msg.Get("type") != "groupchat" {
				t.Fatalf("archived message as broadcast: %v", a.msg)
			}
		}
		// Backward from the newest, 35 at a time.
		var back []archived
		before := ""
		for page := 0; ; page++ {
			if page > n/35+1 {
				t.Fatal("backward paging does not end")
			}
			got, iq := queryRoom(t, bob, room, fmt.Sprintf("b%d", page),
				`<set xmlns="`+muc.NSRSM+`"><max>35</max><before>`+before+`</before></set>`)
			f := fin(t, iq)
			back = append(got, back...)
			if f.Get("complete") == "true" {
				break
			}
			before, _ = rsmSet(f)
		}
		checkArchived(t, "backward", back, want, ids)
		// flip-page: the newest page, newest first.
		got, iq := queryRoom(t, bob, room, "flip", `<set xmlns="`+muc.NSRSM+`"><max>3</max><before/></set><flip-page/>`)
		fin(t, iq)
		if len(got) != 3 || got[0].body != want[n-1] || got[2].body != want[n-3] {
			t.Fatalf("flipped newest page: %v", got)
		}
		// The query form.
		bob.SendRaw(t, `<iq type="get" id="form" to="`+room+`"><query xmlns="`+mam.NS+`"/></iq>`)
		if r := bob.Expect(t, "form", iqResult("form")); r.Get("type") != "result" || !strings.Contains(r.String(), `var="after-id"`) {
			t.Fatalf("query form: %v", r)
		}
		// Not an occupant: forbidden.
		if _, iq := queryRoom(t, dave, room, "stranger", ""); errorCondition(iq) != "forbidden" {
			t.Fatalf("a stranger's query: %v", iq)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		s2 := startOn(t, backend, store)
		alice2 := s2.Dial(t, alice.JID.Bare(), "pw", "r2")
		join(t, alice2, "archived", "alice", "")
		alice2.Expect(t, "in again", presenceFrom(room+"/alice", ""))
		var all []archived
		after = ""
		for page := 0; page < 3; page++ {
			set := `<set xmlns="` + muc.NSRSM + `"><max>100</max>`
			if after != "" {
				set += `<after>` + after + `</after>`
			}
			got, iq := queryRoom(t, alice2, room, fmt.Sprintf("r%d", page), set+`</set>`)
			f := fin(t, iq)
			all = append(all, got...)
			if f.Get("complete") == "true" {
				break
			}
			_, after = rsmSet(f)
		}
		checkArchived(t, "after a restart", all, want, ids)

		alice2.SendRaw(t, `<iq type="set" id="bye" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><destroy/></query></iq>`)
		alice2.Expect(t, "destroyed", iqResult("bye"))
		// The room's work after its lock is let go (deleting it) is done
		// before the next stanza to the service is handled: wait for an
		// answer from the gone room, then look.
		if e := roomInfo(t, alice2, room, "gone"); errorCondition(e) != "item-not-found" {
			t.Fatalf("destroyed room answers: %v", e)
		}
		waitArchive(t, store, room, 0)
	})
}

// waitArchive waits until room's archive in store holds n messages.
func waitArchive(t *testing.T, store storage.Archive, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for {
		page, err := store.QueryArchive(t.Context(), room, storage.ArchiveQuery{Max: n + 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive of %s holds %d messages, want %d", room, len(page.Messages), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkArchived checks that got are the messages want, each once, in
// order, with the stanza-ids their recipients saw.
func checkArchived(t *testing.T, name string, got []archived, want, ids []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", name, len(got), len(want))
	}
	for i, a := range got {
		if a.body != want[i] || a.id != ids[i] {
			t.Fatalf("%s: message %d is %q with id %s, want %q with id %s", name, i, a.body, a.id, want[i], ids[i])
		}
		if len(roomStanzaIDs(a.msg, a.msg.Get("from"))) != 0 || strings.Contains(a.msg.String(), "forged") {
			t.Fatalf("%s: archived message keeps a stanza-id: %v", name, a.msg)
		}
	}
}

// TestRoomArchiveAnonymity: in a semi-anonymous room the archive names
// senders' real JIDs to moderators only, and only they may filter by a
// real JID; in a non-anonymous room everyone sees them. In a members-only
// room a member who is not in the room may read the archive, and someone
// who is not a member may not.
func TestRoomArchiveAnonymity(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startOn(t, backend, nil)
		alice, bob, carol, dave := user(t, s, "alice"), user(t, s, "bob"), user(t, s, "carol"), user(t, s, "dave")
		room := "masked@" + service
		create(t, alice, "masked", "alice")
		configure(t, alice, room, "p", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_whois", "moderators")
		join(t, bob, "masked", "bob", "")
		bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
		bob.SendRaw(t, `<message type="groupchat" id="hi" to="`+room+`"><body>from bob</body>`+
			`<x xmlns="`+muc.NSUser+`"><item jid="boss@`+testenv.Domain+`"/></x></message>`)
		alice.Expect(t, "bob's message", func(el *xmpp.Element) bool { return el.Get("id") == "hi" })

		got, iq := queryRoom(t, alice, room, "mod", "")
		fin(t, iq)
		if len(got) != 1 || realJID(got[0].msg) != bob.JID.Bare().String() {
			t.Fatalf("a moderator's results %v, want bob's message with his real JID", got)
		}
		if strings.Contains(got[0].msg.String(), "boss@") {
			t.Fatalf("the sender's own muc#user item was archived: %v", got[0].msg)
		}
		got, iq = queryRoom(t, bob, room, "part", "")
		fin(t, iq)
		if len(got) != 1 || realJID(got[0].msg) != "" || strings.Contains(got[0].msg.String(), testenv.Domain+`"`) {
			t.Fatalf("a participant's results %v, want bob's message without a real JID", got)
		}
		withAlice := `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>` + mam.NS +
			`</value></field><field var="with"><value>` + bob.JID.Bare().String() + `</value></field></x>`
		if _, iq := queryRoom(t, bob, room, "with", withAlice); errorCondition(iq) != "forbidden" {
			t.Fatalf("a participant filtering by real JID: %v", iq)
		}
		got, iq = queryRoom(t, alice, room, "modwith", withAlice)
		if fin(t, iq); len(got) != 1 {
			t.Fatalf("a moderator filtering by bob's JID: %d results, want 1", len(got))
		}

		// Non-anonymous: everyone sees real JIDs.
		configure(t, alice, room, "anyone", "muc#roomconfig_whois", "anyone")
		got, iq = queryRoom(t, bob, room, "nonanon", "")
		fin(t, iq)
		if len(got) != 1 || realJID(got[0].msg) != bob.JID.Bare().String() {
			t.Fatalf("in a non-anonymous room %v, want bob's real JID", got)
		}

		// Members-only: carol, a member who is not in the room, may read;
		// dave may not.
		alice.SendRaw(t, `<iq type="set" id="mem" to="`+room+`"><query xmlns="`+muc.NSAdmin+`"><item affiliation="member" jid="`+
			carol.JID.Bare().String()+`"/><item affiliation="member" jid="`+bob.JID.Bare().String()+`"/></query></iq>`)
		alice.Expect(t, "members", iqResult("mem"))
		configure(t, alice, room, "mo", "muc#roomconfig_membersonly", "1")
		got, iq = queryRoom(t, carol, room, "member", "")
		if fin(t, iq); len(got) != 1 {
			t.Fatalf("a member's query: %d results, want 1", len(got))
		}
		if _, iq := queryRoom(t, dave, room, "nonmember", ""); errorCondition(iq) != "forbidden" {
			t.Fatalf("a non-member's query: %v", iq)
		}
	})
}

// TestRoomArchiveOff: a temporary room keeps no archive unless its owner
// turns it on; a persistent room whose owner turned it off archives
// nothing, stamps no stanza-id and offers no archive in disco; turned on,
// a temporary room archives until it empties, and its archive goes with it.
func TestRoomArchiveOff(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		s := startOn(t, backend, store)
		alice := user(t, s, "alice")

		send := func(room, id string) *xmpp.Element {
			t.Helper()
			alice.SendRaw(t, `<message type="groupchat" id="`+id+`" to="`+room+`"><body>`+id+`</body></message>`)
			return alice.Expect(t, id, func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == id })
		}
		off := func(room string) {
			t.Helper()
			if info := roomInfo(t, alice, room, "i-"+room); hasFeature(info, mam.NS) || hasFeature(info, mam.NSSID) {
				t.Errorf("%s keeps no archive, but its info says it does: %v", room, info)
			}
			if m := send(room, "x-"+room); len(roomStanzaIDs(m, room)) != 0 {
				t.Errorf("%s keeps no archive, but stamped %v", room, m)
			}
			if _, iq := queryRoom(t, alice, room, "q-"+room, ""); errorCondition(iq) != "feature-not-implemented" {
				t.Errorf("query of %s, which keeps no archive: %v", room, iq)
			}
			waitArchive(t, store, room, 0)
		}

		temp := "temp@" + service
		create(t, alice, "temp", "alice")
		alice.SendRaw(t, `<iq type="get" id="cfg" to="`+temp+`"><query xmlns="`+muc.NSOwner+`"/></iq>`)
		form := alice.Expect(t, "config form", iqResult("cfg"))
		if !strings.Contains(form.String(), `var="muc#roomconfig_enablearchiving"`) {
			t.Fatalf("the configuration form has no archiving field: %v", form)
		}
		off(temp)

		kept := "kept@" + service
		create(t, alice, "kept", "alice")
		configure(t, alice, kept, "p", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_enablearchiving", "0")
		off(kept)

		// Turned on in a temporary room, it archives until the room goes.
		configure(t, alice, temp, "on", "muc#roomconfig_enablearchiving", "1")
		if m := send(temp, "now"); len(roomStanzaIDs(m, temp)) != 1 {
			t.Fatalf("archiving on, no stanza-id: %v", m)
		}
		got, iq := queryRoom(t, alice, temp, "temp-q", "")
		if fin(t, iq); len(got) != 1 || got[0].body != "now" {
			t.Fatalf("temporary room's archive: %v", got)
		}
		alice.SendRaw(t, `<presence type="unavailable" to="`+temp+`/alice"/>`)
		alice.Expect(t, "out", presenceFrom(temp+"/alice", "unavailable"))
		waitArchive(t, store, temp, 0)
	})
}

// TestSlixmppRoomArchive: slixmpp's XEP-0313 plugin, in a room it joined,
// pages through the room's archive of 300 messages at the room's JID both
// ways and gets each once, in order, with the ids the room stamped on the
// messages it delivered; in this semi-anonymous room, as a participant, it
// learns no sender's real JID.
func TestSlixmppRoomArchive(t *testing.T) {
	testenv.NeedSlixmpp(t)
	const n = 300
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startOn(t, backend, nil)
		alice := user(t, s, "alice")
		bobJID := s.AddUser(t, "bob", "pw")
		room := "slix@" + service
		create(t, alice, "slix", "alice")
		configure(t, alice, room, "p", "muc#roomconfig_persistentroom", "1")

		bob := s.StartDriver(t, bobJID, "pw", "laptop", "--mam")
		bob.Do(t, map[string]any{"cmd": "raw", "xml": `<presence to="` + room + `/bob"><x xmlns="` + muc.NS + `"/></presence>`})
		bob.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == room+"/bob" })
		var batch strings.Builder
		for i := range n {
			fmt.Fprintf(&batch, `<message type="groupchat" id="s%d" to="%s"><body>m%d</body></message>`, i, room, i)
		}
		alice.SendRaw(t, batch.String())
		var want, ids []string
		for i := range n {
			want = append(want, fmt.Sprintf("m%d", i))
			m := alice.Expect(t, "own copy", func(el *xmpp.Element) bool { return el.Get("id") == fmt.Sprintf("s%d", i) })
			ids = append(ids, roomStanzaIDs(m, room)...)
		}
		if len(ids) != n {
			t.Fatalf("%d stanza-ids on %d messages", len(ids), n)
		}
		check := func(name string, got []testenv.DriverArchived, reverse bool) {
			t.Helper()
			if len(got) != n {
				t.Fatalf("%s: %d messages, want %d", name, len(got), n)
			}
			for i, r := range got {
				j := i
				if reverse {
					j = n - 1 - i
				}
				if r.Body != want[j] || r.ID != ids[j] || r.From != room+"/alice" {
					t.Fatalf("%s: message %d is %+v, want %q with id %s from %s/alice", name, i, r, want[j], ids[j], room)
				}
				if r.RealJID != "" {
					t.Fatalf("%s: a participant learned a real JID: %+v", name, r)
				}
			}
		}
		bob.Do(t, map[string]any{"cmd": "mam", "id": "fwd", "jid": room, "max": 100})
		check("forward", bob.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "fwd" }).Results, false)
		bob.Do(t, map[string]any{"cmd": "mam", "id": "back", "jid": room, "max": 70, "reverse": true})
		check("backward", bob.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "back" }).Results, true)
		bob.Do(t, map[string]any{"cmd": "quit"})
		bob.Wait(t)
	})
}

package mam_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// team is a server with the default modules and three accounts.
type team struct {
	s                *testenv.Server
	alice, bob, carl jid.JID
}

func newTeam(t *testing.T, backend string, configure ...func(*xmpp.Server)) team {
	t.Helper()
	s := testenv.Start(t, backend, configure...)
	return team{s: s, alice: s.AddUser(t, "alice", "pw"), bob: s.AddUser(t, "bob", "pw"), carl: s.AddUser(t, "carl", "pw")}
}

// online signs in and sends initial presence.
func online(t *testing.T, s *testenv.Server, who jid.JID, resource string) *testenv.Client {
	t.Helper()
	c := s.Dial(t, who, "pw", resource)
	c.SendRaw(t, `<presence/>`)
	return c
}

var seq int

func nextID(prefix string) string {
	seq++
	return fmt.Sprintf("%s%d", prefix, seq)
}

// chat sends a chat message with body from c to to.
func chat(t *testing.T, c *testenv.Client, to jid.JID, body string) {
	t.Helper()
	c.SendRaw(t, `<message type="chat" id="`+nextID("m")+`" to="`+to.String()+`"><body>`+body+`</body></message>`)
}

// expectBody waits for a message with body.
func expectBody(t *testing.T, c *testenv.Client, body string) *xmpp.Element {
	t.Helper()
	return c.Expect(t, "message "+body, func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && b != nil && b.Text() == body
	})
}

// stanzaIDs returns the stanza-ids of a message by 'by'.
func stanzaIDs(el *xmpp.Element, by string) []string {
	var ids []string
	for _, c := range el.Elements() {
		if c.Space == mam.NSSID && c.Local == "stanza-id" && c.Get("by") == by {
			ids = append(ids, c.Get("id"))
		}
	}
	return ids
}

// result is one archived message as a query returns it.
type result struct {
	id, body, from, to string
	stamp              time.Time
}

// answer is a query's results and end.
type answer struct {
	results  []result
	fin      *xmpp.Element
	err      string // the error condition, when the query failed
	complete bool
	first    string
	last     string
}

// query sends a MAM query (to the client's own account unless to is set)
// and collects the results until the IQ's answer.
func query(t *testing.T, c *testenv.Client, to, inner string) answer {
	t.Helper()
	id := nextID("q")
	toAttr := ""
	if to != "" {
		toAttr = ` to="` + to + `"`
	}
	c.SendRaw(t, `<iq type="set" id="`+id+`"`+toAttr+`><query xmlns="urn:xmpp:mam:2" queryid="`+id+`">`+inner+`</query></iq>`)
	var a answer
	for {
		el := c.Expect(t, "results of "+id, func(el *xmpp.Element) bool {
			if el.Local == "iq" {
				return el.Get("id") == id
			}
			r := el.Child(mam.NS, "result")
			return el.Local == "message" && r != nil && r.Get("queryid") == id
		})
		if el.Local == "iq" {
			if el.Get("type") == "error" {
				for _, cond := range el.Child("", "error").Elements() {
					if cond.Space == xmpp.NSStanzas && cond.Local != "text" {
						a.err = cond.Local
					}
				}
				return a
			}
			a.fin = el.Child(mam.NS, "fin")
			if a.fin == nil {
				t.Fatalf("query %s: answer without <fin/>: %s", id, el)
			}
			a.complete = a.fin.Get("complete") == "true"
			if set := a.fin.Child("http://jabber.org/protocol/rsm", "set"); set != nil {
				if f := set.Child("http://jabber.org/protocol/rsm", "first"); f != nil {
					a.first = f.Text()
				}
				if l := set.Child("http://jabber.org/protocol/rsm", "last"); l != nil {
					a.last = l.Text()
				}
			}
			return a
		}
		r := el.Child(mam.NS, "result")
		fwd := r.Child(mam.NSForward, "forwarded")
		if fwd == nil || el.Get("from") != c.JID.Bare().String() {
			t.Fatalf("query %s: result not forwarded from the archive's JID: %s", id, el)
		}
		delay := fwd.Child(mam.NSDelay, "delay")
		msg := fwd.Child("", "message")
		if delay == nil || msg == nil {
			t.Fatalf("query %s: result without delay or message: %s", id, el)
		}
		stamp, err := time.Parse(time.RFC3339Nano, delay.Get("stamp"))
		if err != nil {
			t.Fatalf("query %s: bad stamp: %s", id, el)
		}
		body := ""
		if b := msg.Child("", "body"); b != nil {
			body = b.Text()
		}
		a.results = append(a.results, result{id: r.Get("id"), body: body, from: msg.Get("from"), to: msg.Get("to"), stamp: stamp})
	}
}

func (a answer) bodies() string {
	var b []string
	for _, r := range a.results {
		b = append(b, r.body)
	}
	return strings.Join(b, ",")
}

func (a answer) ids() []string {
	var ids []string
	for _, r := range a.results {
		ids = append(ids, r.id)
	}
	return ids
}

// TestBothSidesArchived: a chat between two local accounts is in both
// archives, each message with an id of each archive; the delivered copy
// carries the recipient's id, which its archive answers with; the sender's
// carbon carries the sender's id and the recipient never sees it.
func TestBothSidesArchived(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		a2 := online(t, tm.s, tm.alice, "a2")
		a2.SendRaw(t, `<iq type="set" id="carbons"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
		a2.Expect(t, "carbons on", func(el *xmpp.Element) bool { return el.Get("id") == "carbons" })
		b := online(t, tm.s, tm.bob, "b")
		var delivered, carbonIDs []string
		for i := range 3 {
			body := fmt.Sprintf("hello %d", i)
			chat(t, a, tm.bob, body)
			el := expectBody(t, b, body)
			ids := stanzaIDs(el, tm.bob.String())
			if len(ids) != 1 || len(stanzaIDs(el, tm.alice.String())) != 0 {
				t.Fatalf("delivered message has stanza-ids by bob %v, by alice %v; want one by bob: %s",
					ids, stanzaIDs(el, tm.alice.String()), el)
			}
			delivered = append(delivered, ids[0])
			carbon := a2.Expect(t, "sent carbon "+body, func(el *xmpp.Element) bool {
				return el.Child("urn:xmpp:carbons:2", "sent") != nil && strings.Contains(el.String(), body)
			})
			fwd := carbon.Child("urn:xmpp:carbons:2", "sent").Child(mam.NSForward, "forwarded").Child("", "message")
			cids := stanzaIDs(fwd, tm.alice.String())
			if len(cids) != 1 {
				t.Fatalf("sent carbon without alice's stanza-id: %s", carbon)
			}
			carbonIDs = append(carbonIDs, cids[0])
		}
		chat(t, b, tm.alice, "reply")
		expectBody(t, a, "reply")

		bob := query(t, b, "", "")
		if bob.bodies() != "hello 0,hello 1,hello 2,reply" || !bob.complete {
			t.Fatalf("bob's archive: %q complete=%v", bob.bodies(), bob.complete)
		}
		for i, id := range delivered {
			if bob.results[i].id != id {
				t.Errorf("bob's archive id %d = %s, delivered with stanza-id %s", i, bob.results[i].id, id)
			}
			if bob.results[i].from != tm.alice.String()+"/a" {
				t.Errorf("archived message from %q, want alice/a", bob.results[i].from)
			}
		}
		al := query(t, a, "", "")
		if al.bodies() != "hello 0,hello 1,hello 2,reply" {
			t.Fatalf("alice's archive: %q", al.bodies())
		}
		for i, id := range carbonIDs {
			if al.results[i].id != id {
				t.Errorf("alice's archive id %d = %s, carbon said %s", i, al.results[i].id, id)
			}
			if id == delivered[i] {
				t.Errorf("alice's and bob's archives share id %s", id)
			}
		}
		if bob.first != bob.results[0].id || bob.last != bob.results[3].id {
			t.Errorf("fin first/last = %s/%s, want %s/%s", bob.first, bob.last, bob.results[0].id, bob.results[3].id)
		}
		for _, r := range al.results {
			if time.Since(r.stamp) > time.Minute || time.Since(r.stamp) < 0 {
				t.Errorf("archived at %v, not now", r.stamp)
			}
		}
	})
}

// TestOfflineSameID: a message to an offline account goes to offline
// storage and to the archive; delivered at login, it carries the id the
// archive answers with, and the archive holds it once.
func TestOfflineSameID(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		chat(t, a, tm.bob, "while you were away")
		// The sender's own archive answers once the message is stored.
		if al := query(t, a, "", ""); al.bodies() != "while you were away" {
			t.Fatalf("alice's archive: %q", al.bodies())
		}
		b := online(t, tm.s, tm.bob, "b")
		el := expectBody(t, b, "while you were away")
		if el.Child(mam.NSDelay, "delay") == nil {
			t.Fatalf("not delivered from offline storage: %s", el)
		}
		ids := stanzaIDs(el, tm.bob.String())
		if len(ids) != 1 {
			t.Fatalf("offline message with stanza-ids %v: %s", ids, el)
		}
		got := query(t, b, "", "")
		if len(got.results) != 1 || got.results[0].id != ids[0] {
			t.Fatalf("bob's archive %v, want the one id %s", got.ids(), ids[0])
		}
	})
}

// TestSpoofedStanzaID: stanza-ids that a sender claims are by the
// recipient, another local account or the server are removed; one by a
// foreign archive stays.
func TestSpoofedStanzaID(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		a.SendRaw(t, `<message type="chat" to="`+tm.bob.String()+`"><body>spoof</body>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="`+tm.bob.String()+`" id="fake"/>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="`+tm.carl.String()+`" id="fake2"/>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="localhost" id="fake3"/>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="room@chat.example.org" id="theirs"/></message>`)
		el := expectBody(t, b, "spoof")
		var ids []string
		for _, c := range el.Elements() {
			if c.Space == mam.NSSID && c.Local == "stanza-id" {
				ids = append(ids, c.Get("by")+"="+c.Get("id"))
			}
		}
		mine := stanzaIDs(el, tm.bob.String())
		if len(ids) != 2 || len(mine) != 1 || mine[0] == "fake" || !strings.Contains(strings.Join(ids, " "), "room@chat.example.org=theirs") {
			t.Fatalf("stanza-ids after the server: %v", ids)
		}
		if got := query(t, b, "", ""); len(got.results) != 1 || got.results[0].id != mine[0] {
			t.Fatalf("archive ids %v, want %s", got.ids(), mine[0])
		}
	})
}

// TestNotArchived: errors, groupchat, headlines, chat states and
// messages with storage hints are not archived; receipts and markers are.
func TestNotArchived(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		to := tm.bob.String()
		for _, m := range []string{
			`<message type="headline" to="` + to + `"><body>news</body></message>`,
			`<message type="chat" to="` + to + `"><composing xmlns="http://jabber.org/protocol/chatstates"/></message>`,
			`<message type="chat" to="` + to + `"><body>secret</body><no-store xmlns="urn:xmpp:hints"/></message>`,
			`<message type="chat" to="` + to + `"><body>secret2</body><no-permanent-store xmlns="urn:xmpp:hints"/></message>`,
			`<message type="chat" to="` + to + `"><received xmlns="urn:xmpp:receipts" id="r1"/></message>`,
			`<message type="chat" to="` + to + `"><displayed xmlns="urn:xmpp:chat-markers:0" id="r1"/></message>`,
		} {
			a.SendRaw(t, m)
		}
		chat(t, a, tm.bob, "last")
		expectBody(t, b, "last")
		for _, c := range []*testenv.Client{a, b} {
			got := query(t, c, "", "")
			if len(got.results) != 3 || got.results[2].body != "last" || got.results[0].body != "" {
				t.Errorf("%s's archive: %d messages %q, want the receipt, the marker and 'last'", c.JID, len(got.results), got.bodies())
			}
		}
	})
}

// seed has alice send bob n messages "m0".."m<n-1>" and waits for the last.
func seed(t *testing.T, tm team, a, b *testenv.Client, n int) {
	t.Helper()
	for i := range n {
		chat(t, a, tm.bob, fmt.Sprintf("m%d", i))
	}
	expectBody(t, b, fmt.Sprintf("m%d", n-1))
}

const rsmNS = `http://jabber.org/protocol/rsm`

// TestQueryPaging: pages forward with after, backward with before, the last
// page with an empty before, flip-page, complete at each end.
func TestQueryPaging(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		seed(t, tm, a, b, 7)
		p := query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max></set>`)
		if p.bodies() != "m0,m1,m2" || p.complete {
			t.Fatalf("first page %q complete=%v", p.bodies(), p.complete)
		}
		p = query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><after>`+p.last+`</after></set>`)
		if p.bodies() != "m3,m4,m5" || p.complete {
			t.Fatalf("second page %q complete=%v", p.bodies(), p.complete)
		}
		p = query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><after>`+p.last+`</after></set>`)
		if p.bodies() != "m6" || !p.complete {
			t.Fatalf("third page %q complete=%v", p.bodies(), p.complete)
		}
		// Backwards from the end.
		p = query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><before/></set>`)
		if p.bodies() != "m4,m5,m6" || p.complete {
			t.Fatalf("last page %q complete=%v", p.bodies(), p.complete)
		}
		p = query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><before>`+p.first+`</before></set>`)
		if p.bodies() != "m1,m2,m3" || p.complete {
			t.Fatalf("page before %q complete=%v", p.bodies(), p.complete)
		}
		p = query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><before>`+p.first+`</before></set>`)
		if p.bodies() != "m0" || !p.complete {
			t.Fatalf("first page backwards %q complete=%v", p.bodies(), p.complete)
		}
		// flip-page: the same page, newest first; first and last stay in
		// archive order.
		f := query(t, b, "", `<set xmlns="`+rsmNS+`"><max>3</max><before/></set><flip-page/>`)
		if f.bodies() != "m6,m5,m4" || f.first != f.results[2].id || f.last != f.results[0].id {
			t.Fatalf("flipped last page %q first=%s last=%s", f.bodies(), f.first, f.last)
		}
		// max 0: nothing, but whether there is more.
		if z := query(t, b, "", `<set xmlns="`+rsmNS+`"><max>0</max></set>`); len(z.results) != 0 || z.complete {
			t.Fatalf("max 0: %q complete=%v", z.bodies(), z.complete)
		}
	})
}

// TestQueryFilters: with, start/end, before-id/after-id and ids; errors
// for unknown ids, bad forms and too large pages; another account's archive
// is forbidden.
func TestQueryFilters(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		c := online(t, tm.s, tm.carl, "c")
		seed(t, tm, a, b, 3)
		chat(t, c, tm.bob, "from carl") // after m2: seed waited for it
		expectBody(t, b, "from carl")
		all := query(t, b, "", "")
		if all.bodies() != "m0,m1,m2,from carl" {
			t.Fatalf("bob's archive: %q", all.bodies())
		}
		form := func(fields string) string {
			return `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:mam:2</value></field>` + fields + `</x>`
		}
		field := func(name string, values ...string) string {
			s := `<field var="` + name + `">`
			for _, v := range values {
				s += `<value>` + v + `</value>`
			}
			return s + `</field>`
		}
		for _, c := range []struct {
			name, inner, want string
		}{
			{"with", form(field("with", tm.carl.String())), "from carl"},
			{"with a full JID", form(field("with", tm.alice.String()+"/a")), "m0,m1,m2"},
			{"after-id", form(field("after-id", all.results[1].id)), "m2,from carl"},
			{"before-id", form(field("before-id", all.results[1].id)), "m0"},
			{"after-id and before-id", form(field("after-id", all.results[0].id) + field("before-id", all.results[3].id)), "m1,m2"},
			{"ids", form(field("ids", all.results[3].id, all.results[0].id)), "m0,from carl"},
			{"start", form(field("start", all.results[3].stamp.Format(time.RFC3339Nano))), "from carl"},
			{"end", form(field("end", all.results[0].stamp.Format(time.RFC3339Nano))), "m0"},
			{"nothing after the end", form(field("start", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))), ""},
		} {
			got := query(t, b, "", c.inner)
			if got.err != "" || got.bodies() != c.want || !got.complete {
				t.Errorf("%s: %q complete=%v err=%s, want %q", c.name, got.bodies(), got.complete, got.err, c.want)
			}
		}
		for _, c := range []struct {
			name, to, inner, cond string
		}{
			{"unknown after-id", "", form(field("after-id", "nosuchid")), "item-not-found"},
			{"unknown RSM after", "", `<set xmlns="` + rsmNS + `"><after>nosuchid</after></set>`, "item-not-found"},
			{"unknown field", "", form(field("colour", "red")), "bad-request"},
			{"bad start", "", form(field("start", "soon")), "bad-request"},
			{"max too large", "", `<set xmlns="` + rsmNS + `"><max>1000</max></set>`, "policy-violation"},
			{"another account's archive", tm.bob.String(), "", "forbidden"},
		} {
			client := b
			if c.to != "" {
				client = a
			}
			if got := query(t, client, c.to, c.inner); got.err != c.cond {
				t.Errorf("%s: error %q, want %s", c.name, got.err, c.cond)
			}
		}
	})
}

// TestPrefs: never and always lists and the roster default decide what is
// archived; prefs read back as set; another account's are forbidden.
func TestPrefs(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		c := online(t, tm.s, tm.carl, "c")
		setPrefs := func(cl *testenv.Client, prefs string) *xmpp.Element {
			t.Helper()
			id := nextID("p")
			cl.SendRaw(t, `<iq type="set" id="`+id+`">`+prefs+`</iq>`)
			return cl.Expect(t, "prefs answer", func(el *xmpp.Element) bool { return el.Get("id") == id })
		}
		res := setPrefs(b, `<prefs xmlns="urn:xmpp:mam:2" default="always"><always/><never><jid>`+tm.carl.String()+`</jid></never></prefs>`)
		if res.Get("type") != "result" || !strings.Contains(res.String(), tm.carl.String()) {
			t.Fatalf("set prefs: %s", res)
		}
		// Messages of two senders may arrive in either order: one at a time.
		chat(t, a, tm.bob, "kept")
		expectBody(t, b, "kept")
		chat(t, c, tm.bob, "not kept")
		expectBody(t, b, "not kept")
		if got := query(t, b, "", ""); got.bodies() != "kept" {
			t.Fatalf("with carl never: bob's archive %q", got.bodies())
		}
		if got := query(t, c, "", ""); got.bodies() != "not kept" {
			t.Fatalf("carl's own archive follows carl's prefs: %q", got.bodies())
		}
		// roster: only contacts in the roster (alice), and the always list.
		b.SendRaw(t, `<iq type="set" id="r1"><query xmlns="jabber:iq:roster"><item jid="`+tm.alice.String()+`"/></query></iq>`)
		b.Expect(t, "roster set", func(el *xmpp.Element) bool { return el.Get("id") == "r1" })
		setPrefs(b, `<prefs xmlns="urn:xmpp:mam:2" default="roster"><always><jid>`+tm.carl.String()+`</jid></always><never/></prefs>`)
		chat(t, a, tm.bob, "roster kept")
		expectBody(t, b, "roster kept")
		chat(t, c, tm.bob, "always kept")
		expectBody(t, b, "always kept")
		b.SendRaw(t, `<iq type="set" id="r2"><query xmlns="jabber:iq:roster"><item jid="`+tm.alice.String()+`" subscription="remove"/></query></iq>`)
		b.Expect(t, "roster remove", func(el *xmpp.Element) bool { return el.Get("id") == "r2" })
		chat(t, a, tm.bob, "not in roster now")
		expectBody(t, b, "not in roster now")
		if got := query(t, b, "", ""); got.bodies() != "kept,roster kept,always kept" {
			t.Fatalf("with default roster: bob's archive %q", got.bodies())
		}
		// never: nothing.
		setPrefs(b, `<prefs xmlns="urn:xmpp:mam:2" default="never"/>`)
		chat(t, a, tm.bob, "never kept")
		expectBody(t, b, "never kept")
		if got := query(t, b, "", ""); got.bodies() != "kept,roster kept,always kept" {
			t.Fatalf("with default never: bob's archive %q", got.bodies())
		}
		b.SendRaw(t, `<iq type="get" id="pg"><prefs xmlns="urn:xmpp:mam:2"/></iq>`)
		got := b.Expect(t, "prefs", func(el *xmpp.Element) bool { return el.Get("id") == "pg" })
		if p := got.Child(mam.NS, "prefs"); p == nil || p.Get("default") != "never" {
			t.Fatalf("prefs read back: %s", got)
		}
		if res := setPrefs(b, `<prefs xmlns="urn:xmpp:mam:2" default="sometimes"/>`); res.Get("type") != "error" {
			t.Fatalf("bad default accepted: %s", res)
		}
		a.SendRaw(t, `<iq type="get" id="pa" to="`+tm.bob.String()+`"><prefs xmlns="urn:xmpp:mam:2"/></iq>`)
		if el := a.Expect(t, "prefs of another", func(el *xmpp.Element) bool { return el.Get("id") == "pa" }); el.Get("type") != "error" || !strings.Contains(el.String(), "forbidden") {
			t.Fatalf("another account's prefs: %s", el)
		}
	})
}

// TestDiscoAndForm: the account advertises the archive and stanza-ids; a
// query get returns the form; metadata names the first and last message.
func TestDiscoAndForm(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		a.SendRaw(t, `<iq type="get" id="md0"><metadata xmlns="urn:xmpp:mam:2"/></iq>`)
		if el := a.Expect(t, "empty metadata", func(el *xmpp.Element) bool { return el.Get("id") == "md0" }); el.Child(mam.NS, "metadata") == nil || len(el.Child(mam.NS, "metadata").Elements()) != 0 {
			t.Fatalf("metadata of an empty archive: %s", el)
		}
		b := online(t, tm.s, tm.bob, "b")
		a.SendRaw(t, `<iq type="get" id="d1" to="`+tm.alice.String()+`"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`)
		info := a.Expect(t, "disco#info", func(el *xmpp.Element) bool { return el.Get("id") == "d1" }).String()
		for _, f := range []string{mam.NS, mam.NSExtended, mam.NSSID} {
			if !strings.Contains(info, `var="`+f+`"`) {
				t.Errorf("account disco#info lacks %s: %s", f, info)
			}
		}
		a.SendRaw(t, `<iq type="get" id="f1"><query xmlns="urn:xmpp:mam:2"/></iq>`)
		fm := a.Expect(t, "form", func(el *xmpp.Element) bool { return el.Get("id") == "f1" }).String()
		for _, v := range []string{"with", "start", "end", "before-id", "after-id", "ids"} {
			if !strings.Contains(fm, `var="`+v+`"`) {
				t.Errorf("query form lacks %s: %s", v, fm)
			}
		}
		seed(t, tm, a, b, 3)
		all := query(t, b, "", "")
		b.SendRaw(t, `<iq type="get" id="md"><metadata xmlns="urn:xmpp:mam:2"/></iq>`)
		md := b.Expect(t, "metadata", func(el *xmpp.Element) bool { return el.Get("id") == "md" }).Child(mam.NS, "metadata")
		if md == nil || md.Child(mam.NS, "start").Get("id") != all.results[0].id || md.Child(mam.NS, "end").Get("id") != all.results[2].id {
			t.Fatalf("metadata %v, want start %s end %s", md, all.results[0].id, all.results[2].id)
		}
	})
}

// TestRetentionAndDeletion: the pruner keeps at most MaxMessages per
// archive and removes what is older than MaxAge; deleting an account
// deletes its archive.
func TestRetentionAndDeletion(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		var m *mam.Module
		tm := newTeam(t, backend, func(srv *xmpp.Server) {
			srv.Modules = modules.Default(modules.Options{Store: srv.Store, Archive: modules.Archive{Disabled: true}})
			m = &mam.Module{Store: srv.Store, MaxMessages: 2, PruneInterval: time.Hour}
			srv.Modules = append(srv.Modules, m)
		})
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		seed(t, tm, a, b, 5)
		ctx := t.Context()
		if err := m.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n := m.PruneOnce(ctx); n != 6 {
			t.Errorf("pruned %d messages, want 3 of each archive", n)
		}
		if got := query(t, b, "", ""); got.bodies() != "m3,m4" {
			t.Fatalf("after pruning to 2: %q", got.bodies())
		}
		m.MaxMessages, m.MaxAge = 0, time.Nanosecond
		if n := m.PruneOnce(ctx); n != 4 {
			t.Errorf("pruned %d old messages, want 4", n)
		}
		if got := query(t, b, "", ""); len(got.results) != 0 {
			t.Fatalf("after pruning by age: %q", got.bodies())
		}
		chat(t, a, tm.bob, "before deletion")
		expectBody(t, b, "before deletion")
		if err := m.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tm.s.Store.DeleteUser(ctx, tm.bob.String()); err != nil {
			t.Fatal(err)
		}
		page, err := tm.s.Store.QueryArchive(ctx, tm.bob.String(), storage.ArchiveQuery{})
		if err != nil || len(page.Messages) != 0 {
			t.Fatalf("bob's archive after deleting bob: %d messages, %v", len(page.Messages), err)
		}
		if got := query(t, a, "", ""); got.bodies() != "before deletion" {
			t.Fatalf("alice's archive after deleting bob: %q", got.bodies())
		}
	})
}

// waitGone waits until the account has no session left, so that what
// follows finds it offline.
func waitGone(t *testing.T, s *testenv.Server, bare string) {
	t.Helper()
	j := jid.MustParse(bare)
	deadline := time.Now().Add(testenv.Timeout)
	for len(s.SessionsOf(j)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s's sessions did not end", bare)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFederated: a conversation with an account of another server is in
// the archive on each side; the remote server strips a stanza-id that
// claims to be by its account, and stamps its own; the local side keeps a
// stanza-id that is by the remote archive.
func TestFederated(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		const remoteDomain = "remote.test"
		local, remote := testenv.StartPair(t, backend, remoteDomain)
		aj, bj := local.AddUser(t, "alice", "pw"), remote.AddUser(t, "bob", "pw")
		a := online(t, local, aj, "a")
		b := online(t, remote, bj, "b")
		a.SendRaw(t, `<message type="chat" to="`+bj.String()+`"><body>over there</body>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="`+bj.String()+`" id="spoofed"/></message>`)
		el := expectBody(t, b, "over there")
		ids := stanzaIDs(el, bj.String())
		if len(ids) != 1 || ids[0] == "spoofed" {
			t.Fatalf("remote delivery with stanza-ids by bob %v: %s", ids, el)
		}
		chat(t, b, aj, "back here")
		back := expectBody(t, a, "back here")
		if got := stanzaIDs(back, aj.String()); len(got) != 1 {
			t.Fatalf("local delivery from the remote server: stanza-ids %v: %s", got, back)
		}
		al := query(t, a, "", "")
		if al.bodies() != "over there,back here" || al.results[0].to != bj.String() {
			t.Fatalf("alice's archive: %q (first to %s)", al.bodies(), al.results[0].to)
		}
		if al.results[1].id != stanzaIDs(back, aj.String())[0] {
			t.Errorf("alice's archive id %s, delivered with %s", al.results[1].id, stanzaIDs(back, aj.String())[0])
		}
		bo := query(t, b, "", "")
		if bo.bodies() != "over there,back here" || bo.results[0].id != ids[0] {
			t.Fatalf("bob's archive on the remote server: %q %v, want first id %s", bo.bodies(), bo.ids(), ids[0])
		}
	})
}

// TestReceivedCarbonStanzaID: the carbon of a received message, which a
// client that did not get the message keeps as its copy, carries the same
// stanza-id as the delivered message.
func TestReceivedCarbonStanzaID(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b1 := tm.s.Dial(t, tm.bob, "pw", "b1")
		b1.SendRaw(t, `<presence><priority>1</priority></presence>`)
		b2 := online(t, tm.s, tm.bob, "b2")
		b2.SendRaw(t, `<iq type="set" id="carbons"><enable xmlns="urn:xmpp:carbons:2"/></iq>`)
		b2.Expect(t, "carbons on", func(el *xmpp.Element) bool { return el.Get("id") == "carbons" })
		chat(t, a, tm.bob, "to the bare JID")
		got := stanzaIDs(expectBody(t, b1, "to the bare JID"), tm.bob.String())
		carbon := b2.Expect(t, "received carbon", func(el *xmpp.Element) bool {
			return el.Child("urn:xmpp:carbons:2", "received") != nil
		})
		fwd := carbon.Child("urn:xmpp:carbons:2", "received").Child(mam.NSForward, "forwarded").Child("", "message")
		if cids := stanzaIDs(fwd, tm.bob.String()); len(got) != 1 || len(cids) != 1 || cids[0] != got[0] {
			t.Fatalf("delivered with stanza-ids %v, carbon with %v: %s", got, cids, carbon)
		}
	})
}

// TestShutdownStoresPending: what was archived just before the server shut
// down is in the store afterwards, though the writer had not stored it yet.
func TestShutdownStoresPending(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "b")
		seed(t, tm, a, b, 50)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tm.s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, owner := range []jid.JID{tm.alice, tm.bob} {
			page, err := tm.s.Store.QueryArchive(ctx, owner.String(), storage.ArchiveQuery{})
			if err != nil || len(page.Messages) != 50 {
				t.Errorf("%s's archive after shutdown: %d messages, %v; want 50", owner, len(page.Messages), err)
			}
		}
	})
}

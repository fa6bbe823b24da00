package pep_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/pep"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

const (
	nsCaps     = "http://jabber.org/protocol/caps"
	nsInfo     = "http://jabber.org/protocol/disco#info"
	nsItems    = "http://jabber.org/protocol/disco#items"
	nsAvatar   = "urn:xmpp:avatar:metadata"
	nsDevices  = "eu.siacs.conversations.axolotl.devicelist"
	nsNick     = "http://jabber.org/protocol/nick"
	nsPrivate  = "jabber:iq:private"
	capsNode   = "https://xmppd.test/client"
	nsDelay    = "urn:xmpp:delay"
	nsDataForm = "jabber:x:data"
)

func start(t *testing.T, backend string) *testenv.Server {
	st := testenv.OpenStore(t, backend)
	return testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Store = st
		srv.Modules = modules.Default(modules.Options{Store: st})
	})
}

// friends makes a and b each other's contacts with a mutual subscription.
func friends(t *testing.T, s *testenv.Server, a, b jid.JID) {
	t.Helper()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		it := storage.RosterItem{Contact: p[1].String(), Subscription: storage.SubBoth}
		if err := s.Store.PutRosterItem(context.Background(), p[0].String(), it, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// caps is a client's capabilities: the disco#info it answers with and the
// hash of it (XEP-0115 §5.1; identities and features only).
type caps struct {
	info string
	ver  string
}

func newCaps(notify ...string) caps {
	feats := []string{nsCaps, nsInfo}
	for _, n := range notify {
		feats = append(feats, n, n+"+notify")
	}
	slices.Sort(feats)
	s := "client/pc//xmppd test<"
	info := `<identity category="client" type="pc" name="xmppd test"/>`
	for _, f := range feats {
		s += f + "<"
		info += `<feature var="` + f + `"/>`
	}
	h := sha1.Sum([]byte(s))
	return caps{info: info, ver: base64.StdEncoding.EncodeToString(h[:])}
}

// online sends available presence with c and waits for it to come back
// (the server then took it); when ask is set the server does not know c
// yet, and the client answers its disco#info request.
func online(t *testing.T, cl *testenv.Client, c caps, ask bool) {
	t.Helper()
	cl.SendRaw(t, `<presence><c xmlns="`+nsCaps+`" hash="sha-1" node="`+capsNode+`" ver="`+c.ver+`"/></presence>`)
	self, asked := false, !ask
	for !self || !asked {
		el := cl.Expect(t, "own presence and the server's disco#info request", func(el *xmpp.Element) bool {
			return (el.Local == "presence" && el.Get("from") == cl.JID.String()) ||
				(el.Local == "iq" && el.Get("type") == "get" && el.Child(nsInfo, "query") != nil)
		})
		if el.Local == "presence" {
			self = true
			continue
		}
		if asked {
			t.Fatalf("the server asks again for known capabilities: %s", el)
		}
		asked = true
		if node := el.Child(nsInfo, "query").Get("node"); node != capsNode+"#"+c.ver {
			t.Fatalf("disco#info request for node %q, want %q", node, capsNode+"#"+c.ver)
		}
		cl.SendRaw(t, `<iq type="result" id="`+el.Get("id")+`" to="`+el.Get("from")+`"><query xmlns="`+nsInfo+
			`" node="`+capsNode+`#`+c.ver+`">`+c.info+`</query></iq>`)
	}
}

// warm makes the server learn c, whose first node is node, before the
// clients of the test announce it: a throwaway account publishes to node,
// announces c, answers the server's question and waits for its own last
// item, which the server sends once it learned c. The clients' presence
// is then handled at once (online with ask false), so that a test's
// publish cannot overtake it.
func warm(t *testing.T, s *testenv.Server, c caps, node string) {
	t.Helper()
	wj := s.AddUser(t, "warm"+strings.NewReplacer(":", "", ".", "", "/", "").Replace(node), "pw")
	w := s.Dial(t, wj, "pw", "r")
	defer w.Close()
	ok(t, "warm-up publish", w.IQ(t, "set", "", publish(node, "w", `<w xmlns="urn:example:w"/>`, "")))
	online(t, w, c, true)
	w.Expect(t, "the warm-up's own last item", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(pep.NSEvent, "event") != nil && el.Child(nsDelay, "delay") != nil
	})
}

func publish(node, id, payload, options string) string {
	po := ""
	if options != "" {
		po = `<publish-options><x xmlns="jabber:x:data" type="submit">` +
			`<field var="FORM_TYPE" type="hidden"><value>` + pep.FormPublishOptions + `</value></field>` +
			options + `</x></publish-options>`
	}
	item := `<item>` + payload + `</item>`
	if id != "" {
		item = `<item id="` + id + `">` + payload + `</item>`
	}
	return `<pubsub xmlns="` + pep.NS + `"><publish node="` + node + `">` + item + `</publish>` + po + `</pubsub>`
}

func field(v, val string) string {
	return `<field var="` + v + `"><value>` + val + `</value></field>`
}

func ok(t *testing.T, what string, res *xmpp.Element) *xmpp.Element {
	t.Helper()
	if res.Get("type") != "result" {
		t.Fatalf("%s: %s", what, res)
	}
	return res
}

func wantError(t *testing.T, what string, res *xmpp.Element, cond xmpp.Condition, app string) {
	t.Helper()
	if res.Get("type") != "error" || testenv.ErrorCondition(res) != cond {
		t.Fatalf("%s: want %s: %s", what, cond, res)
	}
	if app != "" {
		e := res.Child("", "error")
		if e == nil || e.Child(pep.NSErrors, app) == nil {
			t.Fatalf("%s: want the pubsub condition %s: %s", what, app, res)
		}
	}
}

// event waits for a notification of node from 'from' and returns its
// <items/> (or other event child). Last items sent when a client comes
// online (with a delay stamp) are skipped: the server sends them from the
// client's presence, concurrently with what the test publishes next, and
// they may come as well as the notification.
func event(t *testing.T, cl *testenv.Client, from, node string) *xmpp.Element {
	t.Helper()
	var got *xmpp.Element
	cl.Expect(t, "a notification of "+node+" from "+from, func(el *xmpp.Element) bool {
		ev := el.Child(pep.NSEvent, "event")
		if el.Local != "message" || el.Get("from") != from || ev == nil || el.Child(nsDelay, "delay") != nil {
			return false
		}
		for _, c := range ev.Elements() {
			if c.Get("node") == node {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// nothingBefore checks that cl gets the message with body marker from 'from'
// before any notification: sent after what might have notified, it
// proves none came.
func nothingBefore(t *testing.T, cl *testenv.Client, sender *testenv.Client, marker string) {
	t.Helper()
	sender.SendRaw(t, `<message to="`+cl.JID.String()+`" type="chat"><body>`+marker+`</body></message>`)
	el := cl.Expect(t, "the marker "+marker, func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Child(nsDelay, "delay") == nil // see event
	})
	if el.Child("", "body") == nil || el.Child("", "body").Text() != marker {
		t.Fatalf("%s got %s before the marker %s", cl.JID, el, marker)
	}
}

func itemIDs(items *xmpp.Element) []string {
	var ids []string
	for _, it := range items.Elements() {
		if it.Local == "item" {
			ids = append(ids, it.Get("id"))
		}
	}
	return ids
}

func retrieve(t *testing.T, cl *testenv.Client, owner, node, extra string) *xmpp.Element {
	t.Helper()
	return cl.IQ(t, "get", owner, `<pubsub xmlns="`+pep.NS+`"><items node="`+node+`"`+extra+`</pubsub>`)
}

func itemsOf(t *testing.T, res *xmpp.Element) *xmpp.Element {
	t.Helper()
	ps := res.Child(pep.NS, "pubsub")
	if res.Get("type") != "result" || ps == nil || ps.Child(pep.NS, "items") == nil {
		t.Fatalf("items: %s", res)
	}
	return ps.Child(pep.NS, "items")
}

const avatarMeta = `<metadata xmlns="urn:xmpp:avatar:metadata"><info bytes="12345" id="111f4b3c50d7b0df729d299bc6f8e9ef9066971f" height="64" width="64" type="image/png"/></metadata>`

// A publish reaches the owner's and its contacts' sessions that asked for
// the node, and nobody else; the second client with the same capabilities
// is not asked for them again.
func TestPublishNotifies(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		friends(t, s, aj, bj)
		a, a2 := s.Dial(t, aj, "pw", "phone"), s.Dial(t, aj, "pw", "laptop")
		b, c := s.Dial(t, bj, "pw", "r"), s.Dial(t, cj, "pw", "r")
		wants := newCaps(nsAvatar)
		warm(t, s, wants, nsAvatar)
		for _, cl := range []*testenv.Client{a, a2, b, c} {
			online(t, cl, wants, false)
		}
		bare := aj.String()
		res := ok(t, "publish", a.IQ(t, "set", "", publish(nsAvatar, "111f4b3c50d7b0df729d299bc6f8e9ef9066971f", avatarMeta, "")))
		if p := res.Child(pep.NS, "pubsub"); p == nil || p.Child(pep.NS, "publish") == nil {
			t.Fatalf("publish result without <publish/>: %s", res)
		}
		// (a's own copy comes before the IQ's result, which a.IQ skips.)
		for _, cl := range []*testenv.Client{a2, b} {
			items := event(t, cl, bare, nsAvatar)
			it := items.Child(pep.NSEvent, "item")
			if it == nil || it.Get("id") != "111f4b3c50d7b0df729d299bc6f8e9ef9066971f" || it.Child(nsAvatar, "metadata") == nil {
				t.Fatalf("%s: notification without the item: %s", cl.JID, items)
			}
		}
		// Carol gets alice's presence from nobody: no notification.
		nothingBefore(t, c, a, "after the avatar")

		// Bob has no interest in the nickname: no notification for it.
		ok(t, "publish nick", a.IQ(t, "set", "", publish(nsNick, "", `<nick xmlns="`+nsNick+`">Al</nick>`, "")))
		nothingBefore(t, b, a, "after the nick")

		// Bob may read alice's nodes; carol may not (presence access).
		if ids := itemIDs(itemsOf(t, retrieve(t, b, bare, nsAvatar, `/>`))); len(ids) != 1 {
			t.Fatalf("bob retrieves %v", ids)
		}
		wantError(t, "carol retrieves", retrieve(t, c, bare, nsAvatar, `/>`), xmpp.NotAuthorizedCond, "presence-subscription-required")
		// Nobody but alice publishes to alice's nodes.
		wantError(t, "bob publishes to alice", b.IQ(t, "set", bare, publish(nsNick, "", `<nick xmlns="`+nsNick+`">B</nick>`, "")), xmpp.Forbidden, "")
	})
}

// OMEMO's device list, published with publish-options access_model=open,
// reaches a contact and can be read by anyone; a publish whose options do
// not match the node fails with precondition-not-met and changes nothing.
func TestPublishOptions(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		friends(t, s, aj, bj)
		a, b, c := s.Dial(t, aj, "pw", "r"), s.Dial(t, bj, "pw", "r"), s.Dial(t, cj, "pw", "r")
		warm(t, s, newCaps(nsDevices), nsDevices)
		online(t, b, newCaps(nsDevices), false)
		bare := aj.String()
		list := `<list xmlns="eu.siacs.conversations.axolotl"><device id="12345"/></list>`
		open := field("pubsub#access_model", "open")
		ok(t, "publish device list", a.IQ(t, "set", "", publish(nsDevices, "current", list, open)))
		items := event(t, b, bare, nsDevices)
		if d := items.Child(pep.NSEvent, "item"); d == nil || !strings.Contains(d.String(), `id="12345"`) {
			t.Fatalf("bob's notification: %s", items)
		}
		// Open: carol, no contact, reads it.
		got := itemsOf(t, retrieve(t, c, bare, nsDevices, `/>`))
		if ids := itemIDs(got); !slices.Equal(ids, []string{"current"}) {
			t.Fatalf("carol reads %v", ids)
		}
		// The same options again: fine. Others: refused.
		list2 := `<list xmlns="eu.siacs.conversations.axolotl"><device id="12345"/><device id="678"/></list>`
		ok(t, "publish with the same options", a.IQ(t, "set", "", publish(nsDevices, "current", list2, open+field("pubsub#max_items", "1"))))
		wantError(t, "publish with other options",
			a.IQ(t, "set", "", publish(nsDevices, "current", list, field("pubsub#access_model", "presence"))),
			xmpp.ConflictCond, "precondition-not-met")
		got = itemsOf(t, retrieve(t, a, "", nsDevices, `/>`))
		if !strings.Contains(got.String(), `id="678"`) {
			t.Fatalf("a refused publish changed the item: %s", got)
		}
		// The configuration says open.
		res := ok(t, "configure get", a.IQ(t, "get", "", `<pubsub xmlns="`+pep.NSOwner+`"><configure node="`+nsDevices+`"/></pubsub>`))
		if !strings.Contains(res.String(), `<value>open</value>`) {
			t.Fatalf("configuration: %s", res)
		}
		// A value the service does not offer is refused when creating.
		wantError(t, "unknown access model",
			a.IQ(t, "set", "", publish("urn:example:x", "", `<x xmlns="urn:example:x"/>`, field("pubsub#access_model", "authorize"))),
			xmpp.NotAcceptable, "")
	})
}

// A contact coming online is sent the last item of each node it wants, of
// its contacts and of its own account, stamped with when it was published.
func TestLastItemOnLogin(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		friends(t, s, aj, bj)
		a := s.Dial(t, aj, "pw", "r")
		ok(t, "alice publishes", a.IQ(t, "set", "", publish(nsAvatar, "first", avatarMeta, "")))
		ok(t, "alice publishes again", a.IQ(t, "set", "", publish(nsAvatar, "second", avatarMeta, "")))
		ok(t, "alice's nick", a.IQ(t, "set", "", publish(nsNick, "", `<nick xmlns="`+nsNick+`">Al</nick>`, "")))
		b := s.Dial(t, bj, "pw", "r")
		ok(t, "bob publishes", b.IQ(t, "set", "", publish(nsAvatar, "bobs", avatarMeta, "")))
		b2 := s.Dial(t, bj, "pw", "new")
		online(t, b2, newCaps(nsAvatar), true)
		got := map[string]bool{}
		for range 2 {
			b2.Expect(t, "a last item", func(el *xmpp.Element) bool {
				ev := el.Child(pep.NSEvent, "event")
				if el.Local != "message" || ev == nil {
					return false
				}
				items := ev.Child(pep.NSEvent, "items")
				if items == nil || items.Get("node") != nsAvatar {
					t.Fatalf("a last item of a node bob does not want: %s", el)
				}
				if el.Child(nsDelay, "delay") == nil {
					t.Fatalf("a last item without its time: %s", el)
				}
				got[el.Get("from")+" "+items.Child(pep.NSEvent, "item").Get("id")] = true
				return true
			})
		}
		// One item per node (the default keeps one): alice's newest, and
		// bob's own.
		want := map[string]bool{aj.String() + " second": true, bj.String() + " bobs": true}
		for k := range want {
			if !got[k] {
				t.Fatalf("last items %v, want %v", got, want)
			}
		}
		if ids := itemIDs(itemsOf(t, retrieve(t, b2, aj.String(), nsAvatar, `/>`))); !slices.Equal(ids, []string{"second"}) {
			t.Fatalf("the default node keeps %v, want only the last", ids)
		}
	})
}

// Items by id and by count, retraction with notification, purge and
// deletion, and the owner's configuration, on a node that keeps several.
func TestItemsAndOwner(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		friends(t, s, aj, bj)
		a, b := s.Dial(t, aj, "pw", "r"), s.Dial(t, bj, "pw", "r")
		const node = "urn:example:notes"
		warm(t, s, newCaps(node), node)
		online(t, b, newCaps(node), false)
		bare := aj.String()
		keep3 := field("pubsub#max_items", "3")
		for _, id := range []string{"1", "2", "3", "4"} {
			ok(t, "publish "+id, a.IQ(t, "set", "", publish(node, id, `<n xmlns="urn:example:notes">`+id+`</n>`, keep3)))
			event(t, b, bare, node)
		}
		if ids := itemIDs(itemsOf(t, retrieve(t, b, bare, node, `/>`))); !slices.Equal(ids, []string{"2", "3", "4"}) {
			t.Fatalf("items %v, want the newest 3, oldest first", ids)
		}
		if ids := itemIDs(itemsOf(t, retrieve(t, b, bare, node, ` max_items="2"/>`))); !slices.Equal(ids, []string{"3", "4"}) {
			t.Fatalf("max_items=2: %v", ids)
		}
		if ids := itemIDs(itemsOf(t, retrieve(t, b, bare, node, `><item id="3"/><item id="1"/></items>`))); !slices.Equal(ids, []string{"3"}) {
			t.Fatalf("by id: %v", ids)
		}
		wantError(t, "missing node", retrieve(t, b, bare, "urn:example:none", `/>`), xmpp.ItemNotFound, "")

		ok(t, "retract", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><retract node="`+node+`" notify="true"><item id="4"/></retract></pubsub>`))
		ev := event(t, b, bare, node)
		if r := ev.Child(pep.NSEvent, "retract"); r == nil || r.Get("id") != "4" {
			t.Fatalf("retraction notice: %s", ev)
		}
		wantError(t, "retract again", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><retract node="`+node+`"><item id="4"/></retract></pubsub>`), xmpp.ItemNotFound, "")

		// Whitelist: bob is off it until made a member.
		form := `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>` + pep.FormNodeConfig +
			`</value></field>` + field("pubsub#access_model", "whitelist") + `</x>`
		ok(t, "configure", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NSOwner+`"><configure node="`+node+`">`+form+`</configure></pubsub>`))
		wantError(t, "bob off the whitelist", retrieve(t, b, bare, node, `/>`), xmpp.NotAllowed, "closed-node")
		ok(t, "affiliate", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NSOwner+`"><affiliations node="`+node+`"><affiliation jid="`+bj.String()+`" affiliation="member"/></affiliations></pubsub>`))
		if ids := itemIDs(itemsOf(t, retrieve(t, b, bare, node, `/>`))); len(ids) != 2 {
			t.Fatalf("bob on the whitelist reads %v", ids)
		}
		res := ok(t, "affiliations", a.IQ(t, "get", "", `<pubsub xmlns="`+pep.NSOwner+`"><affiliations node="`+node+`"/></pubsub>`))
		if !strings.Contains(res.String(), `jid="`+bj.String()+`" affiliation="member"`) {
			t.Fatalf("affiliations: %s", res)
		}

		ok(t, "purge", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NSOwner+`"><purge node="`+node+`"/></pubsub>`))
		event(t, b, bare, node)
		if ids := itemIDs(itemsOf(t, retrieve(t, a, "", node, `/>`))); len(ids) != 0 {
			t.Fatalf("after purge: %v", ids)
		}
		ok(t, "delete", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NSOwner+`"><delete node="`+node+`"/></pubsub>`))
		if ev := event(t, b, bare, node); ev.Local != "delete" {
			t.Fatalf("deletion notice: %s", ev)
		}
		wantError(t, "deleted node", retrieve(t, a, "", node, `/>`), xmpp.ItemNotFound, "")
	})
}

// Explicit creation with a configuration, conflicts, limits and the
// errors of malformed requests.
func TestCreateAndLimits(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		s := testenv.Start(t, backend, func(srv *xmpp.Server) {
			srv.Store = st
			srv.Modules = modules.Default(modules.Options{Store: st, MaxPEPNodes: 2, MaxPEPItemBytes: 200})
		})
		aj := s.AddUser(t, "alice", "pw")
		a := s.Dial(t, aj, "pw", "r")
		create := func(node string) *xmpp.Element {
			return a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><create node="`+node+`"/><configure><x xmlns="jabber:x:data" type="submit">`+
				`<field var="FORM_TYPE" type="hidden"><value>`+pep.FormNodeConfig+`</value></field>`+field("pubsub#access_model", "open")+`</x></configure></pubsub>`)
		}
		ok(t, "create", create("urn:example:a"))
		wantError(t, "create again", create("urn:example:a"), xmpp.ConflictCond, "")
		ok(t, "create a second", create("urn:example:b"))
		wantError(t, "a third node", create("urn:example:c"), xmpp.NotAllowed, "max-nodes-exceeded")
		wantError(t, "a third by publishing", a.IQ(t, "set", "", publish("urn:example:c", "", `<x xmlns="urn:example:c"/>`, "")), xmpp.NotAllowed, "max-nodes-exceeded")
		big := `<x xmlns="urn:example:a">` + strings.Repeat("y", 300) + `</x>`
		wantError(t, "too big", a.IQ(t, "set", "", publish("urn:example:a", "", big, "")), xmpp.NotAcceptable, "payload-too-big")
		wantError(t, "no payload", a.IQ(t, "set", "", publish("urn:example:a", "", "", "")), xmpp.BadRequest, "payload-required")
		wantError(t, "no node", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><publish><item/></publish></pubsub>`), xmpp.BadRequest, "nodeid-required")
		wantError(t, "subscribe", a.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><subscribe node="urn:example:a" jid="`+aj.String()+`"/></pubsub>`), xmpp.FeatureNotImplemented, "unsupported")
		// An item id the client did not give is made up and returned.
		res := ok(t, "publish without id", a.IQ(t, "set", "", publish("urn:example:a", "", `<x xmlns="urn:example:a"/>`, "")))
		if it := res.Child(pep.NS, "pubsub").Child(pep.NS, "publish").Child(pep.NS, "item"); it == nil || it.Get("id") == "" {
			t.Fatalf("no id made up: %s", res)
		}
	})
}

// Service discovery: the account is a PEP service with the features
// implemented, and lists the nodes a requester may see.
func TestDisco(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		friends(t, s, aj, bj)
		a, b, c := s.Dial(t, aj, "pw", "r"), s.Dial(t, bj, "pw", "r"), s.Dial(t, cj, "pw", "r")
		bare := aj.String()
		info := ok(t, "disco#info", b.IQ(t, "get", bare, `<query xmlns="`+nsInfo+`"/>`)).String()
		for _, want := range []string{`category="pubsub" type="pep"`, pep.NS + `#publish-options`, pep.NS + `#access-whitelist`,
			pep.NSBookmarks + `#compat`} {
			if !strings.Contains(info, want) {
				t.Fatalf("disco#info lacks %s: %s", want, info)
			}
		}
		ok(t, "publish", a.IQ(t, "set", "", publish(nsAvatar, "x1", avatarMeta, "")))
		ok(t, "publish open", a.IQ(t, "set", "", publish(nsDevices, "current", `<list xmlns="eu.siacs.conversations.axolotl"/>`, field("pubsub#access_model", "open"))))
		items := func(cl *testenv.Client) string {
			return ok(t, "disco#items", cl.IQ(t, "get", bare, `<query xmlns="`+nsItems+`"/>`)).String()
		}
		if got := items(b); !strings.Contains(got, `node="`+nsAvatar+`"`) || !strings.Contains(got, `node="`+nsDevices+`"`) {
			t.Fatalf("bob's disco#items: %s", got)
		}
		if got := items(c); strings.Contains(got, `node="`+nsAvatar+`"`) || !strings.Contains(got, `node="`+nsDevices+`"`) {
			t.Fatalf("carol's disco#items (the open node only): %s", got)
		}
		ni := ok(t, "node info", b.IQ(t, "get", bare, `<query xmlns="`+nsInfo+`" node="`+nsAvatar+`"/>`)).String()
		if !strings.Contains(ni, `category="pubsub" type="leaf"`) {
			t.Fatalf("node info: %s", ni)
		}
		nitems := ok(t, "node items", b.IQ(t, "get", bare, `<query xmlns="`+nsItems+`" node="`+nsAvatar+`"/>`)).String()
		if !strings.Contains(nitems, `name="x1"`) {
			t.Fatalf("node items: %s", nitems)
		}
		wantError(t, "carol's node info", c.IQ(t, "get", bare, `<query xmlns="`+nsInfo+`" node="`+nsAvatar+`"/>`), xmpp.ItemNotFound, "")
	})
}

// XEP-0402 bookmarks and XEP-0048's, in private storage and in their
// node, are kept in step whichever a client writes (XEP-0402 §5.3).
func TestBookmarksInStep(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj := s.AddUser(t, "alice", "pw")
		a, a2 := s.Dial(t, aj, "pw", "new"), s.Dial(t, aj, "pw", "old")
		warm(t, s, newCaps(pep.NSBookmarks), pep.NSBookmarks)
		online(t, a, newCaps(pep.NSBookmarks), false)
		bare := aj.String()
		privateGet := func() *xmpp.Element {
			res := ok(t, "private get", a2.IQ(t, "get", "", `<query xmlns="`+nsPrivate+`"><storage xmlns="storage:bookmarks"/></query>`))
			return res.Child(nsPrivate, "query").Child(pep.NSLegacyBookmarks, "storage")
		}
		opts := field("pubsub#persist_items", "true") + field("pubsub#max_items", "max") +
			field("pubsub#send_last_published_item", "never") + field("pubsub#access_model", "whitelist")
		conf := `<conference xmlns="` + pep.NSBookmarks + `" name="The Coven" autojoin="true"><nick>al</nick><extensions><x xmlns="urn:example:e"/></extensions></conference>`
		ok(t, "publish a bookmark", a2.IQ(t, "set", "", publish(pep.NSBookmarks, "coven@conference.localhost", conf, opts)))
		event(t, a, bare, pep.NSBookmarks)
		st := privateGet()
		c := st.Child(pep.NSLegacyBookmarks, "conference")
		if c == nil || c.Get("jid") != "coven@conference.localhost" || c.Get("autojoin") != "true" || c.Get("name") != "The Coven" ||
			c.Child(pep.NSLegacyBookmarks, "nick") == nil || c.Child(pep.NSLegacyBookmarks, "nick").Text() != "al" {
			t.Fatalf("XEP-0048 bookmarks after a XEP-0402 publish: %s", st)
		}

		// An old client replaces the list: one room changed, one added,
		// none removed; the new client is told of both.
		legacy := `<storage xmlns="storage:bookmarks">` +
			`<conference jid="coven@conference.localhost" name="The Coven" autojoin="false"><nick>al</nick></conference>` +
			`<conference jid="orchard@conference.localhost" name="Orchard"/></storage>`
		ok(t, "private set", a2.IQ(t, "set", "", `<query xmlns="`+nsPrivate+`">`+legacy+`</query>`))
		seen := map[string]bool{}
		for range 2 {
			ev := event(t, a, bare, pep.NSBookmarks)
			seen[ev.Child(pep.NSEvent, "item").Get("id")] = true
		}
		if !seen["coven@conference.localhost"] || !seen["orchard@conference.localhost"] {
			t.Fatalf("notifications for %v", seen)
		}
		res := itemsOf(t, retrieve(t, a, "", pep.NSBookmarks, `/>`))
		if ids := itemIDs(res); len(ids) != 2 {
			t.Fatalf("XEP-0402 items after the private set: %v", ids)
		}
		if strings.Contains(res.String(), `autojoin="true"`) {
			t.Fatalf("autojoin not turned off: %s", res)
		}

		// The old client drops a room: it is retracted.
		legacy = `<storage xmlns="storage:bookmarks"><conference jid="orchard@conference.localhost" name="Orchard"/></storage>`
		ok(t, "private set", a2.IQ(t, "set", "", `<query xmlns="`+nsPrivate+`">`+legacy+`</query>`))
		ev := event(t, a, bare, pep.NSBookmarks)
		if r := ev.Child(pep.NSEvent, "retract"); r == nil || r.Get("id") != "coven@conference.localhost" {
			t.Fatalf("retraction: %s", ev)
		}
		// And a XEP-0402 retraction goes back to private storage.
		ok(t, "retract", a2.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><retract node="`+pep.NSBookmarks+`" notify="1"><item id="orchard@conference.localhost"/></retract></pubsub>`))
		if st := privateGet(); len(st.Elements()) != 0 {
			t.Fatalf("XEP-0048 bookmarks after the last retraction: %s", st)
		}
		if ev := event(t, a, bare, pep.NSBookmarks); ev.Child(pep.NSEvent, "retract") == nil {
			t.Fatalf("retraction notice: %s", ev)
		}
		// XEP-0048's node (#compat-pep) was made and holds the list too:
		// set one room there, and it is in the other two places.
		if ids := itemIDs(itemsOf(t, retrieve(t, a2, "", pep.NSLegacyBookmarks, `/>`))); !slices.Equal(ids, []string{"current"}) {
			t.Fatalf("XEP-0048's node: %v", ids)
		}
		legacy = `<storage xmlns="storage:bookmarks"><conference jid="grove@conference.localhost" name="Grove" autojoin="true"/></storage>`
		ok(t, "publish to XEP-0048's node", a2.IQ(t, "set", "", publish(pep.NSLegacyBookmarks, "current", legacy, "")))
		if ev := event(t, a, bare, pep.NSBookmarks); ev.Child(pep.NSEvent, "item").Get("id") != "grove@conference.localhost" {
			t.Fatalf("XEP-0402 notification after a XEP-0048 node publish: %s", ev)
		}
		if c := privateGet().Child(pep.NSLegacyBookmarks, "conference"); c == nil || c.Get("jid") != "grove@conference.localhost" {
			t.Fatalf("private storage after a XEP-0048 node publish: %s", privateGet())
		}
	})
}

// An account removed in band takes its nodes along, from memory too: the
// next account of that name has none.
func TestRemovedAccountForgotten(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj := s.AddUser(t, "alice", "pw")
		a := s.Dial(t, aj, "pw", "r")
		ok(t, "publish", a.IQ(t, "set", "", publish(nsNick, "", `<nick xmlns="`+nsNick+`">Al</nick>`, "")))
		ok(t, "remove", a.IQ(t, "set", "", `<query xmlns="jabber:iq:register"><remove/></query>`))
		s.AddUser(t, "alice", "pw2")
		a2 := s.Dial(t, aj, "pw2", "r")
		if got := ok(t, "disco#items", a2.IQ(t, "get", aj.String(), `<query xmlns="`+nsItems+`"/>`)).String(); strings.Contains(got, nsNick) {
			t.Fatalf("the new account has the old one's node: %s", got)
		}
	})
}

// An avatar published over PEP (XEP-0084) becomes the vCard's photo and
// the hash in presence; a vCard's photo becomes the PEP avatar (XEP-0398).
func TestAvatarConversion(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		friends(t, s, aj, bj)
		a, b := s.Dial(t, aj, "pw", "r"), s.Dial(t, bj, "pw", "r")
		warm(t, s, newCaps(pep.NSAvatarMetadata), pep.NSAvatarMetadata)
		online(t, b, newCaps(pep.NSAvatarMetadata), false)
		a.SendRaw(t, `<presence/>`)
		bare := aj.String()
		b.Expect(t, "alice's presence", func(el *xmpp.Element) bool { return el.Local == "presence" && el.Get("from") == aj.String()+"/r" })

		img := []byte("\x89PNG\r\n\x1a\n-a-tiny-test-image-")
		sum := sha1.Sum(img)
		hash := hex.EncodeToString(sum[:])
		b64 := base64.StdEncoding.EncodeToString(img)
		ok(t, "publish data", a.IQ(t, "set", "", publish(pep.NSAvatarData, hash, `<data xmlns="`+pep.NSAvatarData+`">`+b64+`</data>`, "")))
		meta := `<metadata xmlns="` + pep.NSAvatarMetadata + `"><info id="` + hash + `" bytes="` + strconv.Itoa(len(img)) + `" type="image/png"/></metadata>`
		ok(t, "publish metadata", a.IQ(t, "set", "", publish(pep.NSAvatarMetadata, hash, meta, "")))
		event(t, b, bare, pep.NSAvatarMetadata)
		b.Expect(t, "alice's presence with the new hash", func(el *xmpp.Element) bool {
			x := el.Child("vcard-temp:x:update", "x")
			return el.Local == "presence" && x != nil && x.Child("vcard-temp:x:update", "photo") != nil &&
				x.Child("vcard-temp:x:update", "photo").Text() == hash
		})
		card := ok(t, "vCard", b.IQ(t, "get", bare, `<vCard xmlns="vcard-temp"/>`))
		bin := card.Child("vcard-temp", "vCard").Child("vcard-temp", "PHOTO").Child("vcard-temp", "BINVAL")
		if got, _ := base64.StdEncoding.DecodeString(bin.Text()); string(got) != string(img) {
			t.Fatalf("the vCard's photo is not the avatar: %s", card)
		}

		// The other way: a vCard with another photo becomes the avatar.
		img2 := []byte("\x89PNG\r\n\x1a\n-another-image-")
		sum2 := sha1.Sum(img2)
		hash2 := hex.EncodeToString(sum2[:])
		ok(t, "vCard set", a.IQ(t, "set", "", `<vCard xmlns="vcard-temp"><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+
			base64.StdEncoding.EncodeToString(img2)+`</BINVAL></PHOTO></vCard>`))
		ev := event(t, b, bare, pep.NSAvatarMetadata)
		info := ev.Child(pep.NSEvent, "item").Child(pep.NSAvatarMetadata, "metadata").Child(pep.NSAvatarMetadata, "info")
		if info == nil || info.Get("id") != hash2 || info.Get("bytes") != strconv.Itoa(len(img2)) {
			t.Fatalf("metadata from the vCard: %s", ev)
		}
		data := itemsOf(t, retrieve(t, b, bare, pep.NSAvatarData, `><item id="`+hash2+`"/></items>`))
		if got, _ := base64.StdEncoding.DecodeString(data.Child(pep.NS, "item").Child(pep.NSAvatarData, "data").Text()); string(got) != string(img2) {
			t.Fatalf("avatar data from the vCard: %s", data)
		}
	})
}

// A contact on another server is sent the last items when its presence
// arrives, after the server asked its client for its capabilities over
// federation, and is notified of new ones.
func TestFederated(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		const remoteDomain = "remote.example"
		local, remote := testenv.StartPair(t, backend, remoteDomain, func(srv *xmpp.Server) {
			srv.Modules = modules.Default(modules.Options{Store: srv.Store})
		})
		aj, bj := local.AddUser(t, "alice", "pw"), remote.AddUser(t, "bob", "pw")
		for _, p := range []struct {
			s           *testenv.Server
			owner, with jid.JID
		}{{local, aj, bj}, {remote, bj, aj}} {
			it := storage.RosterItem{Contact: p.with.String(), Subscription: storage.SubBoth}
			if err := p.s.Store.PutRosterItem(context.Background(), p.owner.String(), it, 0); err != nil {
				t.Fatal(err)
			}
		}
		a := local.Dial(t, aj, "pw", "r")
		ok(t, "publish", a.IQ(t, "set", "", publish(nsAvatar, "first", avatarMeta, "")))

		b := remote.Dial(t, bj, "pw", "r")
		c := newCaps(nsAvatar)
		b.SendRaw(t, `<presence><c xmlns="`+nsCaps+`" hash="sha-1" node="`+capsNode+`" ver="`+c.ver+`"/></presence>`)
		// Both servers ask bob's client (his own for its PEP, alice's over
		// federation); the last item comes once alice's knows.
		askers := map[string]bool{}
		b.Expect(t, "alice's last item", func(el *xmpp.Element) bool {
			if el.Local == "iq" && el.Get("type") == "get" && el.Child(nsInfo, "query") != nil {
				askers[el.Get("from")] = true
				b.SendRaw(t, `<iq type="result" id="`+el.Get("id")+`" to="`+el.Get("from")+`"><query xmlns="`+nsInfo+
					`" node="`+capsNode+`#`+c.ver+`">`+c.info+`</query></iq>`)
				return false
			}
			ev := el.Child(pep.NSEvent, "event")
			return el.Local == "message" && el.Get("from") == aj.String() && ev != nil && el.Child(nsDelay, "delay") != nil &&
				strings.Contains(ev.String(), `id="first"`)
		})
		if !askers[local.Server.Domain] {
			t.Fatalf("alice's server did not ask bob's client; askers %v", askers)
		}
		ok(t, "publish again", a.IQ(t, "set", "", publish(nsAvatar, "second", avatarMeta, "")))
		items := event(t, b, aj.String(), nsAvatar)
		if it := items.Child(pep.NSEvent, "item"); it == nil || it.Get("id") != "second" {
			t.Fatalf("bob's notification over federation: %s", items)
		}
	})
}

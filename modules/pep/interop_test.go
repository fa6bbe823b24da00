package pep_test

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/pep"
	"github.com/xmppd/xmppd/xmpp"
)

// The personal eventing service with slixmpp, a third-party client, on both
// sides: its XEP-0060, XEP-0163, XEP-0115 and XEP-0084 plugins publish,
// announce interest through capabilities, take notifications and retrieve
// items; its XEP-0049 plugin stores XEP-0048 bookmarks.

const (
	nsAvatarData = "urn:xmpp:avatar:data"
	nsAxolotl    = "eu.siacs.conversations.axolotl"
)

// slixOnline starts slixmpp as user with interest in nodes (their +notify
// in its capabilities, XEP-0163 §4.4), sends available presence and waits
// for it to come back. With ver set the capabilities must hash to it:
// the server learned them from slixWarm, so the interest is in force once
// the presence is back.
func slixOnline(t *testing.T, s *testenv.Server, user jid.JID, resource, ver string, nodes ...string) *testenv.Driver {
	t.Helper()
	d := s.StartDriver(t, user, "pw", resource)
	d.Do(t, map[string]any{"cmd": "pep_interest", "nodes": nodes})
	if got := d.Expect(t, "caps", nil).Ver; got == "" || ver != "" && got != ver {
		t.Fatalf("%s announces capabilities %q, want %q (those of the warm-up)", d.JID, got, ver)
	}
	d.Do(t, map[string]any{"cmd": "presence"})
	d.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == d.JID.String() && ev.Type == "" })
	return d
}

// slixWarm makes the server learn the capabilities of a slixmpp client
// with interest in nodes, as warm does for the raw client: a throwaway
// account publishes to nodes[0], comes online with them, answers the
// server's disco#info query (slixmpp's XEP-0030 and XEP-0115 plugins) and
// waits for its own last item, which the server sends once it knows the
// capabilities. It returns their hash.
func slixWarm(t *testing.T, s *testenv.Server, nodes ...string) string {
	t.Helper()
	wj := s.AddUser(t, "warm"+strings.NewReplacer(":", "", ".", "", "/", "").Replace(nodes[0]), "pw")
	w := s.StartDriver(t, wj, "pw", "w")
	w.Do(t, map[string]any{"cmd": "pep_publish", "node": nodes[0], "id": "w", "payload": `<w xmlns="urn:example:w"/>`})
	w.Expect(t, "iq_result", nil)
	w.Do(t, map[string]any{"cmd": "pep_interest", "nodes": nodes})
	ver := w.Expect(t, "caps", nil).Ver
	w.Do(t, map[string]any{"cmd": "presence"})
	w.Expect(t, "pubsub_event", func(ev testenv.DriverEvent) bool {
		return ev.From == wj.String() && ev.Node == nodes[0] && ev.Delay != ""
	})
	return ver
}

// slixEvent waits for d's notification of node from 'from', not a last
// item sent late (no delay stamp).
func slixEvent(t *testing.T, d *testenv.Driver, from, node string) testenv.DriverEvent {
	t.Helper()
	return d.Expect(t, "pubsub_event", func(ev testenv.DriverEvent) bool {
		return ev.From == from && ev.Node == node && ev.Delay == ""
	})
}

// payloadOf parses the one item of ev (a notification or a retrieval)
// with the id wanted.
func payloadOf(t *testing.T, ev testenv.DriverEvent, id string) *xmpp.Element {
	t.Helper()
	if len(ev.PEPItems) != 1 || ev.PEPItems[0].ID != id {
		t.Fatalf("want the one item %q: %+v", id, ev)
	}
	el, err := xmpp.ParseElement([]byte(ev.PEPItems[0].XML))
	if err != nil {
		t.Fatalf("item %q: %v: %s", id, err, ev.PEPItems[0].XML)
	}
	return el
}

// devices are the ids of an OMEMO device list (XEP-0384 §5.3.1).
func devices(list *xmpp.Element) []string {
	var ids []string
	for _, d := range list.Elements() {
		if d.Space == nsAxolotl && d.Local == "device" {
			ids = append(ids, d.Get("id"))
		}
	}
	return ids
}

// TestInteropDeviceList: slixmpp publishes an OMEMO device list with
// publish-options pubsub#access_model=open (XEP-0384 §5.3.2); a contact
// whose capabilities ask for it is notified, and a stranger retrieves it.
func TestInteropDeviceList(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		friends(t, s, aj, bj)
		ver := slixWarm(t, s, nsDevices)
		a := s.StartDriver(t, aj, "pw", "a")
		b := slixOnline(t, s, bj, "b", ver, nsDevices)
		c := s.StartDriver(t, cj, "pw", "c")

		list := `<list xmlns="` + nsAxolotl + `"><device id="12345"/><device id="4223"/></list>`
		a.Do(t, map[string]any{"cmd": "pep_publish", "node": nsDevices, "id": "current", "payload": list,
			"options": map[string]string{"pubsub#access_model": "open"}})
		if ev := a.Answer(t); ev.Event != "iq_result" {
			t.Fatalf("publish: %+v", ev)
		}
		got := payloadOf(t, slixEvent(t, b, aj.String(), nsDevices), "current")
		if ids := devices(got); strings.Join(ids, " ") != "12345 4223" {
			t.Fatalf("bob's notification lists devices %v: %s", ids, got)
		}

		c.Do(t, map[string]any{"cmd": "pep_items", "jid": aj.String(), "node": nsDevices})
		ev := c.Answer(t)
		if ev.Event != "pep_items" || ev.Node != nsDevices {
			t.Fatalf("carol retrieves the open device list: %+v", ev)
		}
		if ids := devices(payloadOf(t, ev, "current")); strings.Join(ids, " ") != "12345 4223" {
			t.Fatalf("carol reads devices %v", ids)
		}
		// Publish-options the node does not have (the presence access
		// model): refused (XEP-0060 §7.1.5).
		a.Do(t, map[string]any{"cmd": "pep_publish", "node": nsDevices, "id": "current", "payload": list,
			"options": map[string]string{"pubsub#access_model": "presence"}})
		if ev := a.Answer(t); ev.Event != "iq_error" || ev.Condition != "conflict" {
			t.Fatalf("publish with options the node does not have: %+v, want a conflict (precondition-not-met)", ev)
		}
	})
}

// TestInteropAvatar: slixmpp's XEP-0084 plugin publishes the data, then the
// metadata of an avatar (§4.1, §4.2); a contact whose plugin asks for
// metadata notifications gets the metadata alone, and fetches the data by
// the id it names, byte for byte.
func TestInteropAvatar(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		friends(t, s, aj, bj)
		ver := slixWarm(t, s, nsAvatar)
		a := s.StartDriver(t, aj, "pw", "a")
		b := slixOnline(t, s, bj, "b", ver, nsAvatar)

		image := make([]byte, 6000)
		rand.Read(image)
		sum := sha1.Sum(image)
		id := hex.EncodeToString(sum[:])
		a.Do(t, map[string]any{"cmd": "avatar_publish", "data": base64.StdEncoding.EncodeToString(image), "type": "image/png"})
		if ev := a.Answer(t); ev.Event != "avatar_published" || ev.ID != id {
			t.Fatalf("avatar_publish: %+v, want the id %s", ev, id)
		}

		ev := b.Expect(t, "pubsub_event", func(ev testenv.DriverEvent) bool {
			if ev.Node == nsAvatarData {
				t.Fatalf("bob, who asked for the metadata only, got the data: %+v", ev)
			}
			return ev.From == aj.String() && ev.Node == nsAvatar && ev.Delay == ""
		})
		meta := payloadOf(t, ev, id)
		info := meta.Child(nsAvatar, "info")
		if meta.Space != nsAvatar || info == nil || info.Get("id") != id || info.Get("bytes") != "6000" || info.Get("type") != "image/png" {
			t.Fatalf("metadata: %s", meta)
		}

		b.Do(t, map[string]any{"cmd": "avatar_get", "jid": aj.String(), "id": info.Get("id")})
		got := b.Answer(t)
		if got.Event != "avatar" || got.ID != id {
			t.Fatalf("avatar_get: %+v", got)
		}
		if data, err := base64.StdEncoding.DecodeString(got.Text); err != nil || string(data) != string(image) {
			t.Fatalf("bob's copy of the avatar: %d bytes (%v), want the %d published", len(data), err, len(image))
		}
	})
}

// TestInteropBookmarks: one account, two slixmpp clients: a new one that
// keeps bookmarks in XEP-0402's node and asks for its notifications, and
// an old one that keeps them in private storage with XEP-0048 and
// XEP-0049. Each reads what the other wrote (XEP-0402 §5.3).
func TestInteropBookmarks(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj := s.AddUser(t, "alice", "pw")
		bare := aj.String()
		ver := slixWarm(t, s, pep.NSBookmarks)
		fresh := slixOnline(t, s, aj, "new", ver, pep.NSBookmarks)
		old := s.StartDriver(t, aj, "pw", "old")

		const coven, orchard = "coven@conference.localhost", "orchard@conference.localhost"
		// XEP-0402 §3.2's publish-options.
		opts := map[string]string{"pubsub#persist_items": "true", "pubsub#max_items": "max",
			"pubsub#send_last_published_item": "never", "pubsub#access_model": "whitelist"}
		conf := `<conference xmlns="` + pep.NSBookmarks + `" name="The Coven" autojoin="true"><nick>al</nick></conference>`
		fresh.Do(t, map[string]any{"cmd": "pep_publish", "node": pep.NSBookmarks, "id": coven, "payload": conf, "options": opts})
		// The client's own notification and the publish's result come
		// in either order.
		for result, told := false, false; !result || !told; {
			switch ev := fresh.Answer(t); {
			case ev.Event == "iq_result" && !result:
				result = true
			case ev.Event == "pubsub_event" && !told && ev.From == bare && ev.Node == pep.NSBookmarks && ev.Delay == "":
				told = true
			default:
				t.Fatalf("publishing a bookmark: %+v", ev)
			}
		}

		old.Do(t, map[string]any{"cmd": "bookmarks_get"})
		want := testenv.DriverConference{JID: coven, Name: "The Coven", Nick: "al", Autojoin: true}
		if ev := old.Answer(t); ev.Event != "bookmarks" || len(ev.Conferences) != 1 || ev.Conferences[0] != want {
			t.Fatalf("XEP-0048 bookmarks after a XEP-0402 publish: %+v, want [%+v]", ev, want)
		}

		// The old client changes one room and adds one: the new client is
		// told of both, and reads them from the node.
		old.Do(t, map[string]any{"cmd": "bookmarks_set", "conferences": []testenv.DriverConference{
			{JID: coven, Name: "The Coven", Nick: "al"},
			{JID: orchard, Name: "Orchard", Nick: "ali", Autojoin: true},
		}})
		if ev := old.Answer(t); ev.Event != "iq_result" {
			t.Fatalf("bookmarks_set: %+v", ev)
		}
		told := map[string]bool{}
		for range 2 {
			ev := slixEvent(t, fresh, bare, pep.NSBookmarks)
			for _, it := range ev.PEPItems {
				told[it.ID] = true
			}
		}
		if !told[coven] || !told[orchard] {
			t.Fatalf("the new client was told of %v, want both rooms", told)
		}
		fresh.Do(t, map[string]any{"cmd": "pep_items", "node": pep.NSBookmarks})
		ev := fresh.Answer(t)
		if ev.Event != "pep_items" || len(ev.PEPItems) != 2 {
			t.Fatalf("XEP-0402 bookmarks after the private set: %+v", ev)
		}
		for _, it := range ev.PEPItems {
			c, err := xmpp.ParseElement([]byte(it.XML))
			if err != nil || c.Space != pep.NSBookmarks || c.Local != "conference" {
				t.Fatalf("item %s: %v: %s", it.ID, err, it.XML)
			}
			aj := c.Get("autojoin") == "true" || c.Get("autojoin") == "1"
			nick := c.Child(pep.NSBookmarks, "nick")
			switch {
			case it.ID == coven && (aj || c.Get("name") != "The Coven" || nick == nil || nick.Text() != "al"),
				it.ID == orchard && (!aj || c.Get("name") != "Orchard" || nick == nil || nick.Text() != "ali"),
				it.ID != coven && it.ID != orchard:
				t.Fatalf("XEP-0402 bookmark %s: %s", it.ID, it.XML)
			}
		}
	})
}

// TestInteropLastItem: slixmpp publishes while its contact is offline; the
// contact's slixmpp comes online with the node's +notify, answers the
// server's disco#info query about capabilities it has not seen, and is sent
// the last item, stamped with when it was published (XEP-0163 §4.3.2).
func TestInteropLastItem(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		friends(t, s, aj, bj)
		a := s.StartDriver(t, aj, "pw", "a")
		for _, id := range []string{"1", "2"} {
			a.Do(t, map[string]any{"cmd": "pep_publish", "node": nsDevices, "id": "current",
				"payload": `<list xmlns="` + nsAxolotl + `"><device id="` + id + `"/></list>`})
			if ev := a.Answer(t); ev.Event != "iq_result" {
				t.Fatalf("publish %s: %+v", id, ev)
			}
		}

		b := slixOnline(t, s, bj, "b", "", nsDevices)
		ev := b.Expect(t, "pubsub_event", func(ev testenv.DriverEvent) bool { return ev.Node == nsDevices })
		if ev.From != aj.String() || ev.Delay == "" || ev.DelayFrom != aj.String() {
			t.Fatalf("last item: %+v, want one from %s with its delay stamp", ev, aj)
		}
		if ids := devices(payloadOf(t, ev, "current")); len(ids) != 1 || ids[0] != "2" {
			t.Fatalf("last item lists devices %v, want the second publish's", ids)
		}
	})
}

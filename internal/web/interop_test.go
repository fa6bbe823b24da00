package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/pep"
	"github.com/xmppd/xmppd/modules/private"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// start runs a server with the MUC service and the upload service (its
// files served by the web listener, whose loopback address is its public
// URL), and two accounts that share a team, so that each has the other in
// its roster with a mutual subscription.
func start(t *testing.T, backend string) (s *testenv.Server, alice, bob jid.JID) {
	l := testenv.Listen(t)
	s = testenv.StartWithHTTP(t, backend, l, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true,
			Upload: &upload.Service{Dir: t.TempDir(), PublicURL: "http://" + l.Addr().String()}})
	})
	alice = s.AddUser(t, "alice", "alice pw")
	bob = s.AddUser(t, "bob", "bob pw")
	ctx := context.Background()
	if err := s.Store.CreateGroup(ctx, storage.Group{ID: "team", Kind: storage.KindTeam, Name: "Team"}); err != nil {
		t.Fatal(err)
	}
	for _, j := range []jid.JID{alice, bob} {
		if err := s.Store.AddMember(ctx, "team", j.String()); err != nil {
			t.Fatal(err)
		}
	}
	return s, alice, bob
}

const scriptTimeout = 40 * time.Second

// TestStrophe: strophe.js (npm) in Node logs in over BOSH and over
// WebSocket, gets its roster, exchanges messages with slixmpp over TCP, and
// joins a room and chats in it.
func TestStrophe(t *testing.T) {
	testenv.NeedWeb(t, false)
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s, _, bob := start(t, backend)
		peer := s.StartDriver(t, bob, "bob pw", "slix")
		peer.Do(t, map[string]any{"cmd": "presence"})
		for _, tc := range []struct{ transport, url string }{
			{"websocket", s.WebSocketURL()},
			{"bosh", s.BOSHURL()},
		} {
			t.Run(tc.transport, func(t *testing.T) {
				hello, reply := "hi from strophe over "+tc.transport, "hi back over "+tc.transport
				n := testenv.StartNode(t, "strophe.mjs", "--transport", tc.transport, "--url", tc.url,
					"--jid", "alice@localhost", "--password", "alice pw", "--resource", tc.transport,
					"--peer", "bob@localhost/slix", "--send", hello, "--expect", reply,
					"--room", "web@conference.localhost", "--nick", "alice-"+tc.transport,
					"--timeout", "30")
				if ev := n.Expect(t, "connected", scriptTimeout); ev["jid"] != "alice@localhost/"+tc.transport {
					t.Fatalf("bound %v", ev["jid"])
				}
				roster := n.Expect(t, "roster", scriptTimeout)
				items, _ := roster["items"].([]any)
				if len(items) != 1 {
					t.Fatalf("roster %v, want bob", roster)
				}
				item := items[0].(map[string]any)
				if item["jid"] != "bob@localhost" || item["subscription"] != "both" {
					t.Fatalf("roster item %v, want bob with subscription both", item)
				}
				if groups, _ := item["groups"].([]any); len(groups) != 1 || groups[0] != "Team" {
					t.Fatalf("roster item groups %v, want [Team]", item["groups"])
				}
				got := peer.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == hello })
				if got.From != "alice@localhost/"+tc.transport {
					t.Fatalf("slixmpp got the message from %s", got.From)
				}
				peer.Do(t, map[string]any{"cmd": "message", "to": got.From, "body": reply, "type": "chat"})
				if ev := n.Expect(t, "message", scriptTimeout); ev["body"] != reply || ev["from"] != "bob@localhost/slix" {
					t.Fatalf("strophe got %v", ev)
				}
				if ev := n.Expect(t, "groupchat", scriptTimeout); ev["from"] != "web@conference.localhost/alice-"+tc.transport {
					t.Fatalf("groupchat %v", ev)
				}
				n.Expect(t, "done", scriptTimeout)
				if err := n.Wait(t, scriptTimeout); err != nil {
					t.Fatalf("strophe.mjs: %v", err)
				}
			})
		}
	})
}

// TestConverse: headless Chromium opens /chat/, logs in through
// Converse.js, shows the contact's avatar (the PHOTO of the vCard the
// contact set before, XEP-0054), sends a message that slixmpp receives
// over TCP, receives its answer, and sends a picture through HTTP upload
// (XEP-0363), whose URL slixmpp receives; over WebSocket and over BOSH.
// Over WebSocket it then opens the chat again in a fresh browser (a reload
// on a second device) and sees both messages, which Converse fetched from
// the message archive (XEP-0313). Before each run the account bookmarks
// two rooms with autojoin, one the way an old client does (XEP-0048 in
// private XML storage, from slixmpp) and one the way a new client does
// (XEP-0402); Converse, which reads the bookmarks from PEP when the
// server announces XEP-0402's #compat, lists both rooms under their names
// and joins them with the bookmarks' nicks. The screenshots are saved in
// $XMPPD_SCREENSHOTS (or the test's temporary folder).
func TestConverse(t *testing.T) {
	testenv.NeedWeb(t, true)
	testenv.NeedSlixmpp(t)
	s, alice, bob := start(t, "sqlite")
	carol := s.AddUser(t, "carol", "carol pw")
	// dave, like carol, is not in alice's roster: a stranger to her.
	dave := s.AddUser(t, "dave", "dave pw")
	photo := picture(t, color.RGBA{R: 0x20, G: 0x60, B: 0xc0, A: 0xff})
	setPhoto(t, s, bob, "bob pw", photo)
	peer := s.StartDriver(t, bob, "bob pw", "slix")
	peer.Do(t, map[string]any{"cmd": "presence"})
	dir := os.Getenv("XMPPD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for i, transport := range []string{"websocket", "bosh"} {
		t.Run(transport, func(t *testing.T) {
			hello, reply := "hello from Converse over "+transport, "hello back over TCP, "+transport
			shot := filepath.Join(dir, "converse-"+transport+".png")
			// A picture of its own for each run, under a name of its own.
			sent := picture(t, color.RGBA{R: 0xe0, G: uint8(0x40 * i), B: 0x10, A: 0xff})
			file := filepath.Join(t.TempDir(), "sent over "+transport+".png")
			if err := os.WriteFile(file, sent, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--url", "http://" + s.HTTP + "/chat/?transport=" + transport,
				"--jid", "alice@localhost", "--password", "alice pw", "--peer", "bob@localhost",
				"--send", hello, "--expect", reply, "--screenshot", shot, "--timeout", "90",
				"--avatar", "--upload", file}
			// Over WebSocket, a second visit in a fresh browser shows the
			// conversation again: Converse fetches it from the archive.
			history := transport == "websocket"
			if history {
				args = append(args, "--history")
			}

			// Two rooms that exist with names (as `xmppctl room create
			// -kind chat -name` makes them), carol in both to see alice
			// come in; then the bookmarks. The old client's set replaces
			// the whole list, so the earlier run's rooms are gone from
			// both stores (XEP-0402 §5.3.2) and only these two remain.
			marks := []bookmark{
				{room: "legacy-" + transport + "@conference." + testenv.Domain,
					name: "Old client's room (" + transport + ")", nick: "alice-old-" + transport},
				{room: "pep-" + transport + "@conference." + testenv.Domain,
					name: "New client's room (" + transport + ")", nick: "alice-new-" + transport},
			}
			watcher := s.Dial(t, carol, "carol pw", "watch-"+transport)
			for _, b := range marks {
				createRoom(t, s, b.room, b.name)
				joinRoom(t, watcher, b.room, "carol")
				args = append(args, "--bookmark", b.room+"="+b.name)
			}
			setLegacyBookmarks(t, s, alice, "alice pw", marks[0])
			publishBookmark(t, s, alice, "alice pw", marks[1])
			checkBookmarks(t, s, alice, "alice pw", marks)

			// Strangers: carol writes to alice, who has never heard of
			// her; alice starts a chat with dave by his address alone.
			fromCarol, toDave := "hello from a stranger over "+transport, "hello dave, over "+transport
			args = append(args, "--stranger", carol.String()+"="+fromCarol, "--new-chat", dave.String()+"="+toDave)
			daveSession := s.Dial(t, dave, "dave pw", "desk-"+transport)
			daveSession.SendRaw(t, "<presence/>")
			daveSession.Expect(t, "dave's own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })

			n := testenv.StartNode(t, "converse.mjs", args...)
			n.Expect(t, "loggedin", 70*time.Second)
			watcher.SendRaw(t, `<message to="alice@localhost" type="chat" id="stranger-`+transport+`"><body>`+fromCarol+`</body></message>`)

			// The avatar is the vCard's photo, in the roster and in the
			// chat's heading.
			avatar := n.Expect(t, "avatar", 70*time.Second)
			for _, where := range []string{"roster", "heading"} {
				uri, _ := avatar[where].(string)
				if got := dataURI(t, uri, "image/png"); !bytes.Equal(got, photo) {
					t.Fatalf("the avatar in the %s is %d bytes differing from the %d of the vCard's photo", where, len(got), len(photo))
				}
			}

			n.Expect(t, "sent", scriptTimeout)
			got := peer.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == hello })
			peer.Do(t, map[string]any{"cmd": "message", "to": got.From, "body": reply, "type": "chat"})
			if ev := n.Expect(t, "message", scriptTimeout); ev["body"] != reply {
				t.Fatalf("Converse showed %v", ev)
			}

			// The picture: its URL comes to the peer as the body and as
			// an out-of-band URL (XEP-0066), and serves the same bytes.
			uploaded := n.Expect(t, "uploaded", scriptTimeout)
			ev := peer.Expect(t, "message", func(ev testenv.DriverEvent) bool { return strings.Contains(ev.Body, "/upload/") })
			if ev.Body != uploaded["url"] {
				t.Fatalf("the peer got %q, Converse links to %v", ev.Body, uploaded["url"])
			}
			if oob := oobURL(t, ev.XML); oob != ev.Body {
				t.Fatalf("out-of-band URL %q, body %q", oob, ev.Body)
			}
			if got := fetch(t, ev.Body); !bytes.Equal(got, sent) {
				t.Fatalf("GET %s: %d bytes differing from the %d Converse sent", ev.Body, len(got), len(sent))
			}

			// The stranger's message shows, and the chat started by
			// address reaches dave.
			if ev := n.Expect(t, "stranger", scriptTimeout); ev["body"] != fromCarol {
				t.Fatalf("Converse showed %v, want carol's %q", ev, fromCarol)
			}
			n.Expect(t, "new-chat", scriptTimeout)
			daveSession.Expect(t, "alice's message to dave", func(el *xmpp.Element) bool {
				b := el.Child("", "body")
				return el.Local == "message" && strings.HasPrefix(el.Get("from"), "alice@localhost/") && b != nil && b.Text() == toDave
			})

			// The bookmarked rooms: listed under their names, entered.
			// Converse fetched them from XEP-0402's node, the one it reads
			// when the account announces #compat; the server converted
			// the old client's private-storage set into it.
			shown := n.Expect(t, "bookmarks", scriptTimeout)
			rooms, _ := shown["rooms"].([]any)
			if len(rooms) != len(marks) {
				t.Fatalf("Converse reported %v, want %d rooms", shown, len(marks))
			}
			for i, b := range marks {
				room, _ := rooms[i].(map[string]any)
				if room["jid"] != b.room || room["listed"] != b.name || room["bookmarked"] != b.name || room["entered"] != true {
					t.Errorf("Converse shows %v, want %s listed and bookmarked as %q, entered", room, b.room, b.name)
				}
			}
			if queried, _ := shown["queried"].([]any); len(queried) != 1 || queried[0] != pep.NSBookmarks {
				t.Errorf("Converse asked for bookmarks from %v, want only the PEP node %s", shown["queried"], pep.NSBookmarks)
			}
			// Server-side: alice is an occupant of both rooms, under the
			// nicks of the bookmarks.
			expectOccupants(t, watcher, marks)

			n.Expect(t, "screenshot", scriptTimeout)
			if history {
				n.Expect(t, "history", scriptTimeout)
			}
			n.Expect(t, "done", scriptTimeout)
			if err := n.Wait(t, scriptTimeout); err != nil {
				t.Fatalf("converse.mjs: %v", err)
			}
			png, err := os.ReadFile(shot)
			if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10<<10 {
				t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
			}
			// Entering a room, Converse writes its bookmark back when the
			// room says otherwise (its name from disco#info, say); the
			// rooms have the bookmarks' names, so both stores still hold
			// exactly what the clients set.
			checkBookmarks(t, s, alice, "alice pw", marks)
		})
	}
}

// picture is a small PNG of one colour.
func picture(t *testing.T, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 24, 24))
	for y := range 24 {
		for x := range 24 {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// setPhoto sets user's vCard (XEP-0054) with a name and the PNG as its
// PHOTO, from a session of its own that ends again.
func setPhoto(t *testing.T, s *testenv.Server, user jid.JID, password string, photo []byte) {
	t.Helper()
	c := s.Dial(t, user, password, "vcard")
	defer c.Close()
	res := c.IQ(t, "set", "", `<vCard xmlns="vcard-temp"><FN>Bob</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+
		base64.StdEncoding.EncodeToString(photo)+`</BINVAL></PHOTO></vCard>`)
	if res.Get("type") != "result" {
		t.Fatalf("vCard set: %s", res)
	}
}

// dataURI decodes a base64 data: URI of the media type.
func dataURI(t *testing.T, uri, mediaType string) []byte {
	t.Helper()
	data, ok := strings.CutPrefix(uri, "data:"+mediaType+";base64,")
	if !ok {
		t.Fatalf("not a base64 data: URI of %s: %.80q", mediaType, uri)
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("data: URI: %v", err)
	}
	return b
}

// oobURL is the XEP-0066 URL of a message, as slixmpp serialised it.
func oobURL(t *testing.T, message string) string {
	t.Helper()
	el, err := xmpp.ParseElement([]byte(message))
	if err != nil {
		t.Fatalf("message %q: %v", message, err)
	}
	x := el.Child("jabber:x:oob", "x")
	if x == nil {
		t.Fatalf("no out-of-band data in %s", message)
	}
	return x.Child("jabber:x:oob", "url").Text()
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(t *testing.T, url string) []byte {
	t.Helper()
	c := &http.Client{Timeout: testenv.Timeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return b
}

// bookmark is a room bookmarked with autojoin (XEP-0402 §3, XEP-0048 §3).
type bookmark struct{ room, name, nick string }

// createRoom stores an open, persistent room with a name, as an admin
// creates one; the MUC service finds it when it is first addressed.
func createRoom(t *testing.T, s *testenv.Server, room, name string) {
	t.Helper()
	if err := s.Store.SaveRoom(context.Background(), storage.Room{JID: room, Config: muc.ChatRoomConfig(name, 0)}); err != nil {
		t.Fatal(err)
	}
}

// joinRoom enters room with c as nick and waits for its own presence
// (XEP-0045 §7.2.2, status 110).
func joinRoom(t *testing.T, c *testenv.Client, room, nick string) {
	t.Helper()
	c.SendRaw(t, `<presence to="`+room+"/"+nick+`"><x xmlns="`+muc.NS+`"/></presence>`)
	c.Expect(t, "own presence in "+room, func(el *xmpp.Element) bool {
		if el.Local != "presence" || el.Get("from") != room+"/"+nick {
			return false
		}
		if el.Get("type") == "error" {
			t.Fatalf("joining %s: %s", room, el)
		}
		x := el.Child(muc.NSUser, "x")
		if x == nil {
			return false
		}
		for _, st := range x.Elements() {
			if st.Local == "status" && st.Get("code") == "110" {
				return true
			}
		}
		return false
	})
}

// expectOccupants waits until c, an occupant of each room, has seen the
// presence of an occupant under each bookmark's nick, in any order.
func expectOccupants(t *testing.T, c *testenv.Client, marks []bookmark) {
	t.Helper()
	want := map[string]bool{}
	for _, b := range marks {
		want[b.room+"/"+b.nick] = true
	}
	for len(want) > 0 {
		el := c.Expect(t, fmt.Sprintf("presence from %v", want), func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("type") == "" && want[el.Get("from")]
		})
		delete(want, el.Get("from"))
	}
}

// setLegacyBookmarks stores the bookmarks the way an old client does,
// with slixmpp: XEP-0048's element in private XML storage (XEP-0049),
// the whole list at once.
func setLegacyBookmarks(t *testing.T, s *testenv.Server, user jid.JID, password string, marks ...bookmark) {
	t.Helper()
	d := s.StartDriver(t, user, password, "old-client")
	var confs []map[string]any
	for _, b := range marks {
		confs = append(confs, map[string]any{"jid": b.room, "name": b.name, "nick": b.nick, "autojoin": true})
	}
	d.Do(t, map[string]any{"cmd": "bookmarks_set", "conferences": confs})
	if ev := d.Answer(t); ev.Event != "iq_result" {
		t.Fatalf("slixmpp bookmarks_set: %+v", ev)
	}
	d.Do(t, map[string]any{"cmd": "quit"})
	if code := d.Wait(t); code != 0 {
		t.Fatalf("slixmpp driver exited with %d", code)
	}
}

// publishBookmark adds a bookmark the way a new client does: an item of
// XEP-0402's node, with the publish-options of XEP-0402 §3.2.
func publishBookmark(t *testing.T, s *testenv.Server, user jid.JID, password string, b bookmark) {
	t.Helper()
	c := s.Dial(t, user, password, "new-client")
	defer c.Close()
	field := func(v, value string) string {
		return `<field var="` + v + `"><value>` + value + `</value></field>`
	}
	res := c.IQ(t, "set", "", `<pubsub xmlns="`+pep.NS+`"><publish node="`+pep.NSBookmarks+`"><item id="`+b.room+`">`+
		`<conference xmlns="`+pep.NSBookmarks+`" name="`+b.name+`" autojoin="true"><nick>`+b.nick+`</nick></conference>`+
		`</item></publish><publish-options><x xmlns="`+form.NS+`" type="submit">`+
		`<field var="FORM_TYPE" type="hidden"><value>`+pep.FormPublishOptions+`</value></field>`+
		field("pubsub#persist_items", "true")+field("pubsub#max_items", "max")+
		field("pubsub#send_last_published_item", "never")+field("pubsub#access_model", "whitelist")+
		`</x></publish-options></pubsub>`)
	if res.Get("type") != "result" {
		t.Fatalf("XEP-0402 publish: %s", res)
	}
}

// checkBookmarks reads the account's bookmarks from both stores, the PEP
// node of XEP-0402 and XEP-0048's element in private XML storage, and
// checks that each holds exactly marks (XEP-0402 §5.3: the server keeps
// them in step).
func checkBookmarks(t *testing.T, s *testenv.Server, user jid.JID, password string, marks []bookmark) {
	t.Helper()
	c := s.Dial(t, user, password, "check")
	defer c.Close()
	want := map[string]bookmark{}
	for _, b := range marks {
		want[b.room] = b
	}

	res := c.IQ(t, "get", "", `<pubsub xmlns="`+pep.NS+`"><items node="`+pep.NSBookmarks+`"/></pubsub>`)
	var items *xmpp.Element
	if ps := res.Child(pep.NS, "pubsub"); res.Get("type") == "result" && ps != nil {
		items = ps.Child(pep.NS, "items")
	}
	if items == nil {
		t.Fatalf("the items of %s: %s", pep.NSBookmarks, res)
	}
	got := map[string]bookmark{}
	for _, it := range items.Elements() {
		conf := it.Child(pep.NSBookmarks, "conference")
		if conf == nil || conf.Get("autojoin") != "true" && conf.Get("autojoin") != "1" {
			t.Errorf("PEP item %s is not a conference with autojoin", it)
			continue
		}
		got[it.Get("id")] = bookmark{room: it.Get("id"), name: conf.Get("name"), nick: childText(conf, pep.NSBookmarks, "nick")}
	}
	if !maps.Equal(got, want) {
		t.Errorf("PEP node %s holds %v, want %v", pep.NSBookmarks, got, want)
	}

	res = c.IQ(t, "get", "", `<query xmlns="`+private.NS+`"><storage xmlns="`+pep.NSLegacyBookmarks+`"/></query>`)
	var st *xmpp.Element
	if q := res.Child(private.NS, "query"); res.Get("type") == "result" && q != nil {
		st = q.Child(pep.NSLegacyBookmarks, "storage")
	}
	if st == nil {
		t.Fatalf("private storage: %s", res)
	}
	got = map[string]bookmark{}
	for _, conf := range st.Elements() {
		if conf.Get("autojoin") != "true" && conf.Get("autojoin") != "1" {
			t.Errorf("private storage's %s has no autojoin", conf)
		}
		got[conf.Get("jid")] = bookmark{room: conf.Get("jid"), name: conf.Get("name"), nick: childText(conf, pep.NSLegacyBookmarks, "nick")}
	}
	if !maps.Equal(got, want) {
		t.Errorf("private storage holds %v, want %v", got, want)
	}
}

// childText is the text of el's child space:local, "" when it has none.
func childText(el *xmpp.Element, space, local string) string {
	if c := el.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

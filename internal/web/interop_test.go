package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
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
// the message archive (XEP-0313). The screenshots are saved in
// $XMPPD_SCREENSHOTS (or the test's temporary folder).
func TestConverse(t *testing.T) {
	testenv.NeedWeb(t, true)
	testenv.NeedSlixmpp(t)
	s, _, bob := start(t, "sqlite")
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
			n := testenv.StartNode(t, "converse.mjs", args...)

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

			// Bookmarked rooms (XEP-0402, kept with PEP) will be checked
			// here: a bookmark set before login, the room joined.

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

package web_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// start runs a server with the MUC service, and two accounts that share a
// team, so that each has the other in its roster with a mutual
// subscription.
func start(t *testing.T, backend string) (s *testenv.Server, alice, bob jid.JID) {
	s = testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true})
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
// Converse.js, sends a message that slixmpp receives over TCP, and receives
// its answer; over WebSocket and over BOSH. Over WebSocket it then opens
// the chat again in a fresh browser (a reload on a second device) and sees
// both messages, which Converse fetched from the message archive
// (XEP-0313). The screenshots are saved in
// $XMPPD_SCREENSHOTS (or the test's temporary folder).
func TestConverse(t *testing.T) {
	testenv.NeedWeb(t, true)
	testenv.NeedSlixmpp(t)
	s, _, bob := start(t, "sqlite")
	peer := s.StartDriver(t, bob, "bob pw", "slix")
	peer.Do(t, map[string]any{"cmd": "presence"})
	dir := os.Getenv("XMPPD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, transport := range []string{"websocket", "bosh"} {
		t.Run(transport, func(t *testing.T) {
			hello, reply := "hello from Converse over "+transport, "hello back over TCP, "+transport
			shot := filepath.Join(dir, "converse-"+transport+".png")
			args := []string{"--url", "http://" + s.HTTP + "/chat/?transport=" + transport,
				"--jid", "alice@localhost", "--password", "alice pw", "--peer", "bob@localhost",
				"--send", hello, "--expect", reply, "--screenshot", shot, "--timeout", "90"}
			// Over WebSocket, a second visit in a fresh browser shows the
			// conversation again: Converse fetches it from the archive.
			history := transport == "websocket"
			if history {
				args = append(args, "--history")
			}
			n := testenv.StartNode(t, "converse.mjs", args...)
			n.Expect(t, "sent", 70*time.Second)
			got := peer.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == hello })
			peer.Do(t, map[string]any{"cmd": "message", "to": got.From, "body": reply, "type": "chat"})
			if ev := n.Expect(t, "message", scriptTimeout); ev["body"] != reply {
				t.Fatalf("Converse showed %v", ev)
			}
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

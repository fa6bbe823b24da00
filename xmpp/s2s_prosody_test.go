package xmpp_test

import (
	"net"
	"os"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// TestFederationProsody federates xmppd (localhost) with a real Prosody
// (prosody.test): xmppd reaches Prosody by a static route; Prosody finds
// xmppd at localhost:5269 and conference.localhost through a hosts entry
// the test adds. Neither certificate is valid, so both directions use
// dialback. Checked: messages both ways, a full presence subscription, a
// Prosody user in one of our rooms, our user in one of Prosody's, and
// bounces once Prosody is stopped.
func TestFederationProsody(t *testing.T) {
	testenv.NeedProsody(t)
	testenv.NeedSlixmpp(t)
	l, err := net.Listen("tcp", "127.0.0.1:5269")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("port 5269, where Prosody looks for localhost's server, is taken: %v", err)
		}
		t.Skipf("port 5269 is taken: %v", err)
	}
	testenv.HostsEntry(t, "conference.localhost")
	const peer = "prosody.test"
	p := testenv.StartProsody(t, peer, `Component "conference.prosody.test" "muc"`)
	p.Register(t, "bob", "bob pw")
	s := testenv.StartWithS2S(t, "sqlite", l, func(srv *xmpp.Server) {
		srv.S2SRoutes = map[string]string{peer: p.S2S, "conference." + peer: p.S2S}
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MUC: true})
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "alice pw"), "alice pw", "a")
	alice.SendRaw(t, `<presence/>`)
	bob := testenv.StartDriverAt(t, p.C2S, p.CertPEM, jid.MustParse("bob@"+peer), "bob pw", "slix", "--mech", "SCRAM-SHA-1")
	bob.Do(t, map[string]any{"cmd": "presence"})

	// Messages both ways.
	alice.SendRaw(t, `<message type="chat" to="bob@prosody.test/slix"><body>hello prosody</body></message>`)
	if ev := bob.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "hello prosody" }); ev.From != "alice@localhost/a" {
		t.Fatalf("bob got it from %s", ev.From)
	}
	bob.Do(t, map[string]any{"cmd": "message", "to": "alice@localhost/a", "body": "hello xmppd", "type": "chat"})
	alice.Expect(t, "message from prosody", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Get("from") == "bob@prosody.test/slix" && b != nil && b.Text() == "hello xmppd"
	})

	// A full subscription: each subscribes to the other and approves.
	alice.SendRaw(t, `<presence to="bob@prosody.test" type="subscribe"/>`)
	bob.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.Type == "subscribe" && ev.From == "alice@localhost" })
	bob.Do(t, map[string]any{"cmd": "presence", "type": "subscribed", "to": "alice@localhost"})
	alice.Expect(t, "subscribed", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribed" && el.Get("from") == "bob@prosody.test"
	})
	alice.Expect(t, "bob's presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "" && el.Get("from") == "bob@prosody.test/slix"
	})
	bob.Do(t, map[string]any{"cmd": "presence", "type": "subscribe", "to": "alice@localhost"})
	alice.Expect(t, "subscribe from bob", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribe" && el.Get("from") == "bob@prosody.test"
	})
	alice.SendRaw(t, `<presence to="bob@prosody.test" type="subscribed"/>`)
	bob.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.Type == "" && ev.From == "alice@localhost/a" })
	alice.SendRaw(t, `<iq type="get" id="ros"><query xmlns="jabber:iq:roster"/></iq>`)
	ros := alice.Expect(t, "roster", func(el *xmpp.Element) bool { return el.Get("id") == "ros" })
	if !strings.Contains(ros.String(), `subscription="both"`) || !strings.Contains(ros.String(), "bob@prosody.test") {
		t.Fatalf("alice's roster after the subscription: %s", ros)
	}

	// Bob joins alice's room and talks in it.
	room := "lobby@conference.localhost"
	alice.SendRaw(t, `<presence to="`+room+`/alice"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	alice.Expect(t, "own room presence", func(el *xmpp.Element) bool { return el.Get("from") == room+"/alice" })
	alice.SendRaw(t, `<iq type="set" id="inst" to="`+room+`"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query></iq>`)
	alice.Expect(t, "instant room", func(el *xmpp.Element) bool { return el.Get("id") == "inst" })
	bob.Do(t, map[string]any{"cmd": "raw", "xml": `<presence to="` + room + `/bob"><x xmlns="http://jabber.org/protocol/muc"/></presence>`})
	bob.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == room+"/bob" && ev.Type == "" })
	alice.Expect(t, "bob in the room", func(el *xmpp.Element) bool { return el.Get("from") == room+"/bob" })
	bob.Do(t, map[string]any{"cmd": "message", "to": room, "body": "hi room", "type": "groupchat"})
	alice.Expect(t, "bob's groupchat", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Get("type") == "groupchat" && el.Get("from") == room+"/bob" && b != nil && b.Text() == "hi room"
	})
	bob.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "hi room" && ev.From == room+"/bob" })

	// Alice joins a room on Prosody's MUC service and talks in it.
	far := "far@conference.prosody.test"
	alice.SendRaw(t, `<presence to="`+far+`/alice"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	alice.Expect(t, "own presence in Prosody's room", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == far+"/alice" && el.Get("type") == ""
	})
	alice.SendRaw(t, `<iq type="set" id="inst2" to="`+far+`"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query></iq>`)
	alice.Expect(t, "instant room on Prosody", func(el *xmpp.Element) bool { return el.Get("id") == "inst2" })
	alice.SendRaw(t, `<message type="groupchat" to="`+far+`"><body>hello from xmppd</body></message>`)
	alice.Expect(t, "own groupchat from Prosody's room", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Get("type") == "groupchat" && el.Get("from") == far+"/alice" && b != nil && b.Text() == "hello from xmppd"
	})

	// Dialback it was, in both directions.
	log := p.Log()
	for _, want := range []string{"verified dialback key... it is valid", "is now authenticated for localhost"} {
		if !strings.Contains(log, want) {
			t.Errorf("prosody's log lacks %q", want)
		}
	}

	// With Prosody gone, messages to it come back as errors.
	p.Stop()
	alice.SendRaw(t, `<message type="chat" id="late" to="bob@prosody.test/slix"><body>anyone?</body></message>`)
	el := alice.Expect(t, "bounce", func(el *xmpp.Element) bool { return el.Get("id") == "late" })
	if el.Get("type") != "error" || !(strings.Contains(el.String(), "remote-server-not-found") || strings.Contains(el.String(), "remote-server-timeout")) {
		t.Fatalf("a message to a stopped peer came back as %s", el)
	}
}

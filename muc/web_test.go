package muc_test

import (
	"testing"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
)

// TestWebTransports: a room works the same for occupants over TCP,
// WebSocket and BOSH: each joins, and a message from each reaches the
// other two and comes back to its sender.
func TestWebTransports(t *testing.T) {
	s := start(t)
	tcp := user(t, s, "tcp")
	ws := s.DialWebSocket(t, s.AddUser(t, "ws", "pw"), "pw", "r")
	b := s.NewBOSH()
	b.Login(t, s.AddUser(t, "bosh", "pw"), "pw", "r")
	room := "web@" + service

	create(t, tcp, "web", "tcp")
	join(t, ws, "web", "ws", "")
	ws.Expect(t, "own presence over WebSocket", presenceFrom(room+"/ws", ""))
	b.Post(t, "", `<presence xmlns="jabber:client" to="`+room+`/bosh"><x xmlns="`+muc.NS+`"/></presence>`)
	b.Until(t, "own presence over BOSH", presenceFrom(room+"/bosh", ""))
	tcp.Expect(t, "bosh joined", presenceFrom(room+"/bosh", ""))
	ws.Expect(t, "bosh joined", presenceFrom(room+"/bosh", ""))

	groupchat := func(from, text string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool {
			bd := el.Child("", "body")
			return el.Local == "message" && el.Get("type") == "groupchat" && el.Get("from") == room+"/"+from && bd != nil && bd.Text() == text
		}
	}
	send := func(text string) string {
		return `<message xmlns="jabber:client" type="groupchat" to="` + room + `"><body>` + text + `</body></message>`
	}
	ws.SendRaw(t, send("from ws"))
	ws.Expect(t, "own message over WebSocket", groupchat("ws", "from ws"))
	tcp.Expect(t, "message from ws", groupchat("ws", "from ws"))
	b.Until(t, "message from ws over BOSH", groupchat("ws", "from ws"))

	b.Post(t, "", send("from bosh"))
	tcp.Expect(t, "message from bosh", groupchat("bosh", "from bosh"))
	ws.Expect(t, "message from bosh", groupchat("bosh", "from bosh"))
	b.Until(t, "own message over BOSH", groupchat("bosh", "from bosh"))

	tcp.SendRaw(t, send("from tcp"))
	ws.Expect(t, "message from tcp", groupchat("tcp", "from tcp"))
	b.Until(t, "message from tcp over BOSH", groupchat("tcp", "from tcp"))

}

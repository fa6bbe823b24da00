package xmpp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// dupStanzas are stanzas with an attribute given twice somewhere, which XML
// 1.0 §3.1 (WFC: Unique Att Spec) and Namespaces in XML §6.3 forbid; BOB,
// ALICE, SELF and BODY are filled in per client. Each must end the sender's
// stream with <not-well-formed/> (RFC 6120 §4.9.3.13) and go nowhere.
var dupStanzas = []struct{ name, send string }{
	{"issue 15", `<message to='BOB' to='ALICE' type='chat' type='normal'><body>BODY</body></message>`},
	{"to twice, one value", `<message to='BOB' to='BOB' type='chat'><body>BODY</body></message>`},
	// The first 'from' passes the check against the session's JID and is
	// the one the server restamps; the second would reach bob as it is.
	{"own from, then another", `<message from='SELF' from='ALICE' to='BOB' type='chat'><body>BODY</body></message>`},
	{"in the body", `<message to='BOB' type='chat'><body xml:lang='en' xml:lang='de'>BODY</body></message>`},
	{"in an extension", `<message to='BOB' type='chat'><body>BODY</body><x xmlns='urn:example:x' id='1' id='2'/></message>`},
	{"two prefixes, one namespace", `<message to='BOB' type='chat' xmlns:a='urn:example:a' xmlns:b='urn:example:a' a:x='1' b:x='2'><body>BODY</body></message>`},
	{"prefixes in a child", `<message to='BOB' type='chat' xmlns:a='urn:example:a'><body>BODY</body><x xmlns='urn:example:x' xmlns:b='urn:example:a' a:k='1' b:k='2'/></message>`},
	{"xmlns twice", `<message xmlns='jabber:client' xmlns='jabber:client' to='BOB' type='chat'><body>BODY</body></message>`},
	{"xmlns:prefix twice in a child", `<message to='BOB' type='chat'><body>BODY</body><x xmlns='urn:example:x' xmlns:a='urn:example:a' xmlns:a='urn:example:b'/></message>`},
	{"presence", `<presence to='BOB' type='subscribe' type='subscribed'><status>BODY</status></presence>`},
	{"iq", `<iq to='BOB' type='get' id='1' id='2'><query xmlns='jabber:iq:version'/></iq>`},
	// Not a duplicate, but also let through by encoding/xml, and what bob
	// got of it used to end his stream: a local part that is not a name
	// (Namespaces in XML §3).
	{"local name not a name", `<message to='BOB' type='chat'><body>BODY</body><a:0 xmlns:a='urn:example:a'/></message>`},
}

func fillDup(send, body, self string, bob, alice *testenv.Client) string {
	return strings.NewReplacer("BOB", bob.JID.String(), "ALICE", alice.JID.String(), "SELF", self, "BODY", body).Replace(send)
}

// TestDuplicateAttributeEndsStream: after login, each stanza of dupStanzas
// ends the sender's stream with <not-well-formed/>, and bob, to whom it is
// addressed, gets nothing of it; everybody else is still served.
func TestDuplicateAttributeEndsStream(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	mallory := s.AddUser(t, "mallory", "pw")
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "desk")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "phone")
	for _, tc := range dupStanzas {
		t.Run(tc.name, func(t *testing.T) {
			c := s.Dial(t, mallory, "pw", "")
			body := "duplicate: " + tc.name
			c.SendRaw(t, fillDup(tc.send, body, c.JID.String(), bob, alice))
			c.ExpectStreamError(t, "not-well-formed")
			// The stanza is refused before it is routed: had it been, bob
			// would have it (or its error) before what alice sends now.
			expectOnlyAfter(t, alice, bob, "after "+tc.name, mallory.String())
		})
	}
	s.Others(t)
}

// expectOnlyAfter has from send to a chat message with body marker and
// waits for it, failing if to gets anything from the account forbidden
// first.
func expectOnlyAfter(t *testing.T, from, to *testenv.Client, marker, forbidden string) {
	t.Helper()
	from.SendRaw(t, `<message type='chat' to='`+to.JID.String()+`'><body>`+marker+`</body></message>`)
	to.Expect(t, marker, func(el *xmpp.Element) bool {
		if strings.HasPrefix(el.Get("from"), forbidden) {
			t.Fatalf("%s got %s", to.JID, el)
		}
		b := el.Child("", "body")
		return b != nil && b.Text() == marker
	})
}

// TestDuplicateAttributeWebTransports: the stanzas of dupStanzas in a
// WebSocket message (RFC 7395) and in a BOSH <body/> (XEP-0206) reach the
// same parser once the client is logged in, and end the stream the same way.
func TestDuplicateAttributeWebTransports(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	mallory := s.AddUser(t, "mallory", "pw")
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "desk")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "phone")
	for _, tc := range dupStanzas[:3] {
		t.Run("websocket/"+tc.name, func(t *testing.T) {
			c := s.DialWebSocket(t, mallory, "pw", "")
			body := "duplicate over WebSocket: " + tc.name
			if err := c.WebSocket().WriteMessage(websocket.TextMessage, []byte(fillDup(tc.send, body, c.JID.String(), bob, alice))); err != nil {
				t.Fatal(err)
			}
			c.ExpectStreamError(t, "not-well-formed")
			expectOnlyAfter(t, alice, bob, "after WebSocket "+tc.name, mallory.String())
		})
		t.Run("bosh/"+tc.name, func(t *testing.T) {
			b := s.NewBOSH()
			self := b.Login(t, mallory, "pw", "")
			body := "duplicate over BOSH: " + tc.name
			_, el := b.Post(t, "", fillDup(tc.send, body, self.String(), bob, alice))
			// The error comes in the answer to this request or to a later
			// one (XEP-0206 §7: remote-stream-error with the error itself).
			deadline := time.Now().Add(testenv.Timeout)
			for el.Get("type") != "terminate" && time.Now().Before(deadline) {
				_, el = b.Post(t, "", "")
			}
			if se := el.Child(xmpp.NSStream, "error"); el.Get("condition") != "remote-stream-error" || se == nil || se.Child("", "not-well-formed") == nil {
				t.Fatalf("answered %s, want a terminate body: remote-stream-error with <not-well-formed/>", el)
			}
			expectOnlyAfter(t, alice, bob, "after BOSH "+tc.name, mallory.String())
		})
	}
	s.Others(t)
}

package xmpp_test

import (
	"strconv"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// BenchmarkFederationMessage: chat messages from a user of one xmppd to a
// user of another, over their server-to-server stream, end to end (the
// sender's session, the router, s2s out, s2s in, the recipient's
// session), with up to 100 in flight so that the recipient's queue (and
// the test client reading it) is not what is measured.
func BenchmarkFederationMessage(b *testing.B) {
	local, remote := testenv.StartPair(b, "sqlite", remoteDomain)
	alice := local.Dial(b, local.AddUser(b, "alice", "pw"), "pw", "a")
	bob := remote.Dial(b, remote.AddUser(b, "bob", "pw"), "pw", "b")
	testenv.Exchange(b, alice, bob) // the stream is up
	isMessage := func(el *xmpp.Element) bool { return el.Local == "message" }
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(100, b.N-i)
		for j := 0; j < n; j++ {
			alice.SendRaw(b, `<message type="chat" to="bob@remote.test/b"><body>m`+strconv.Itoa(i+j)+`</body></message>`)
		}
		for j := 0; j < n; j++ {
			bob.Expect(b, "message", isMessage)
		}
		i += n
	}
}

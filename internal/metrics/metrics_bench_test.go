package metrics_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/metrics"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// BenchmarkStanzaHooks is what the core calls per routed message with
// metrics on: a count in, the routing time, a count out. It must not
// allocate.
func BenchmarkStanzaHooks(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.StanzaIn(xmpp.MessageStanza)
			m.Routed(xmpp.MessageStanza, 30*time.Microsecond)
			m.StanzaOut(xmpp.MessageStanza)
		}
	})
}

// BenchmarkFederationMessageMetered is xmpp's BenchmarkFederationMessage
// with metrics on in both servers, as xmppd runs by default: compare the
// two for the price of counting.
func BenchmarkFederationMessageMetered(b *testing.B) {
	on := func(s *xmpp.Server) {
		m := metrics.New()
		s.Metrics = m
		s.Store = m.WrapStore(s.Store)
	}
	local, remote := testenv.StartPair(b, "sqlite", "remote.test", on)
	alice := local.Dial(b, local.AddUser(b, "alice", "pw"), "pw", "a")
	bob := remote.Dial(b, remote.AddUser(b, "bob", "pw"), "pw", "b")
	testenv.Exchange(b, alice, bob)
	isMessage := func(el *xmpp.Element) bool { return el.Local == "message" }
	b.ReportAllocs()
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

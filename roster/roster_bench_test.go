package roster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// BenchmarkPresenceBroadcast measures one presence change of an account
// with 100 subscribed contacts (10 of them online), from the client's
// stanza to its own echo, which the server sends after the contacts.
func BenchmarkPresenceBroadcast(b *testing.B) {
	for _, backend := range testenv.Backends {
		b.Run(backend, func(b *testing.B) {
			s := testenv.Start(b, backend)
			ctx := context.Background()
			aj := s.AddUser(b, "alice", "pw")
			var online []*testenv.Client
			for i := range 100 {
				cj := s.AddUser(b, fmt.Sprintf("c%d", i), "pw")
				for _, p := range [][2]string{{aj.String(), cj.String()}, {cj.String(), aj.String()}} {
					if err := s.Store.PutRosterItem(ctx, p[0], storage.RosterItem{Contact: p[1], Subscription: storage.SubBoth}, 0); err != nil {
						b.Fatal(err)
					}
				}
				if i < 10 {
					c := s.Dial(b, cj, "pw", "r")
					c.SendRaw(b, `<presence/>`)
					online = append(online, c)
				}
			}
			a := s.Dial(b, aj, "pw", "a")
			a.SendRaw(b, `<presence/>`)
			a.Expect(b, "own presence", func(el *xmpp.Element) bool { return el.Local == "presence" && el.Get("from") == a.JID.String() })
			// Drain what the contacts receive, so that their queues never fill.
			for _, c := range online {
				go func() {
					for range c.In {
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				status := fmt.Sprintf("s%d", i)
				a.SendRaw(b, `<presence><status>`+status+`</status></presence>`)
				a.Expect(b, "echo", func(el *xmpp.Element) bool {
					st := el.Child("", "status")
					return el.Local == "presence" && st != nil && st.Text() == status
				})
			}
		})
	}
}

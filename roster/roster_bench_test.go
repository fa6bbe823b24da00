package roster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

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
			// Presence written at once, not after the server's linger: one
			// broadcast, waited for, measures the work and not the wait.
			s := testenv.Start(b, backend, func(srv *xmpp.Server) { srv.PresenceLinger = -1 })
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

// BenchmarkTeamSignIn: the members of one team, connected and bound, ask
// for their rosters and send initial presence; an iteration ends when each
// has seen every member's presence, its own included. It is the roster and
// presence side of a team signing in at once (issue 22), without TLS and
// SASL, which the team scenario of xmppbench measures from outside. Each
// iteration dials the team afresh (not timed), with a resource of its own.
func BenchmarkTeamSignIn(b *testing.B) {
	for _, backend := range testenv.Backends {
		for _, n := range []int{50, 150} {
			b.Run(fmt.Sprintf("%s/%d", backend, n), func(b *testing.B) {
				benchTeamSignIn(b, backend, n)
			})
		}
	}
}

func benchTeamSignIn(b *testing.B, backend string, n int) {
	s := testenv.Start(b, backend, func(srv *xmpp.Server) { srv.ConnRatePerIP, srv.MaxUnauthPerIP = -1, -1 })
	ctx := context.Background()
	if err := s.Store.CreateGroup(ctx, storage.Group{ID: "team", Kind: storage.KindTeam, Name: "Team"}); err != nil {
		b.Fatal(err)
	}
	// The team is complete before anyone signs in: a session keeps its
	// account's co-members from when it started, and the watch that
	// updates them comes in its own time.
	members := make([]jid.JID, n)
	for i := range n {
		members[i] = s.AddUser(b, fmt.Sprintf("m%d", i), "pw")
		if err := s.Store.AddMember(ctx, "team", members[i].String()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.StopTimer()
	for iter := range b.N {
		resource := fmt.Sprintf("i%d", iter)
		clients := make([]*testenv.Client, n)
		for i, j := range members {
			clients[i] = s.Dial(b, j, "pw", resource)
		}
		done := make(chan error, n)
		b.StartTimer()
		for _, c := range clients {
			go func() {
				c.SendRaw(b, `<iq type="get" id="r"><query xmlns="jabber:iq:roster"/></iq>`)
				c.SendRaw(b, `<presence/>`)
				seen := map[string]bool{}
				for len(seen) < n {
					select {
					case el, ok := <-c.In:
						if !ok {
							done <- fmt.Errorf("%s: stream ended: %v", c.JID, <-c.Err)
							return
						}
						f, err := jid.Parse(el.Get("from"))
						if el.Local == "presence" && el.Get("type") == "" && err == nil && f.Resourcepart() == resource {
							seen[f.Bare().String()] = true
						}
					case <-time.After(testenv.Timeout):
						done <- fmt.Errorf("%s saw %d presences of %d", c.JID, len(seen), n)
						return
					}
				}
				done <- nil
			}()
		}
		for range n {
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for _, c := range clients {
			c.Close()
		}
	}
}

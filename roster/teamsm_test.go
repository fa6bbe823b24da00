package roster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// TestLargeTeamLoginWithSM: a member of a 1,200-person team, whose
// colleagues are all online, signs in with stream management on (as
// Conversations and Monal do) and with the server's default limits. Its
// initial presence brings the 1,199 colleagues' presences at once, before
// the client can acknowledge anything: that must fit in what a session may
// have queued and unacknowledged, or the member is cut off at every login
// (it was, with 500 unacknowledged stanzas allowed).
//
// The colleagues are online on another node: their sessions are entries in
// the presence registry, which is what the new session's presence is
// answered from, without 1,199 real connections.
func TestLargeTeamLoginWithSM(t *testing.T) {
	const n = 1200
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		ctx := context.Background()
		must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "co", Kind: storage.KindTeam, Name: "Company"}))
		me := s.AddUser(t, "m0", "pw")
		must(t, s.Store.AddMember(ctx, "co", me.String()))
		for i := 1; i < n; i++ {
			bare := fmt.Sprintf("m%d@%s", i, s.Domain)
			must(t, s.Store.AddMember(ctx, "co", bare))
			p := fmt.Sprintf(`<presence xmlns="jabber:client" from="%s/phone"><show>away</show></presence>`, bare)
			must(t, s.Registry().SetResource(ctx, bare, storage.Resource{
				Resource: "phone", Node: "other-node", Available: true, Presence: []byte(p)}))
		}

		c := s.DialSM(t, me, "pw", "r", "", 0)
		defer c.Close()
		c.Enable()
		c.Send(`<iq type="get" id="roster"><query xmlns="jabber:iq:roster"/></iq>`)
		c.Send(`<presence/>`)
		seen := make(map[string]bool, n)
		items := -1
		for items < 0 || len(seen) < n-1 {
			el := c.Next()
			switch {
			case el.Space == xmpp.NSSM && el.Local == "r":
				c.Send(fmt.Sprintf(`<a xmlns="%s" h="%d"/>`, xmpp.NSSM, c.H))
			case el.Space == xmpp.NSStream && el.Local == "error":
				t.Fatalf("cut off after %d presences: %s", len(seen), el)
			case el.Local == "iq" && el.Get("id") == "roster":
				items = len(el.Child(xmpp.NSRoster, "query").Elements())
			case el.Local == "presence" && el.Get("from") != c.JID.String():
				if el.Get("type") != "" {
					t.Fatalf("presence of a colleague who is online: %s", el)
				}
				seen[el.Get("from")] = true
			}
		}
		if items != n-1 {
			t.Errorf("roster has %d items, want the %d colleagues", items, n-1)
		}
	})
}

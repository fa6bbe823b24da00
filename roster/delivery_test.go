package roster_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// received returns the message bodies c got before the answer to a ping,
// which the server sends after anything routed to c earlier.
func (u *user) received(t *testing.T) []string {
	t.Helper()
	var bodies []string
	id := nextID()
	u.SendRaw(t, `<iq type="get" id="`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	u.Expect(t, "ping answer", func(el *xmpp.Element) bool {
		if b := el.Child("", "body"); el.Local == "message" && b != nil {
			bodies = append(bodies, b.Text())
		}
		return el.Get("id") == id
	})
	return bodies
}

// TestMessageDeliveryRules walks RFC 6121 §8.5's tables for each message
// type, to the bare JID and to full JIDs, with resources of different
// priorities.
func TestMessageDeliveryRules(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	bj := s.AddUser(t, "bob", "pw")
	a := online(t, s, s.AddUser(t, "alice", "pw"), "a")
	res := map[string]*user{}
	for _, r := range []struct{ name, prio string }{{"desk", "10"}, {"phone", "10"}, {"tv", "1"}, {"bot", "-1"}} {
		u := login(t, s, bj, r.name)
		u.SendRaw(t, `<presence><priority>`+r.prio+`</priority></presence>`)
		u.Expect(t, "own presence", isPresence(u.JID.String(), ""))
		res[r.name] = u
	}
	// A resource that never sent presence is connected but not available.
	res["quiet"] = login(t, s, bj, "quiet")
	for _, u := range res {
		u.received(t) // presence of the others, nothing else
	}
	for _, tc := range []struct {
		name, to, typ string
		want          []string // resources that get it
		errCond       string   // error back to alice
	}{
		{"chat to bare: highest priorities", "bob@localhost", "chat", []string{"desk", "phone"}, ""},
		{"normal to bare: highest priorities", "bob@localhost", "normal", []string{"desk", "phone"}, ""},
		{"no type is normal", "bob@localhost", "", []string{"desk", "phone"}, ""},
		{"headline to bare: every non-negative", "bob@localhost", "headline", []string{"desk", "phone", "tv"}, ""},
		{"groupchat to bare: error", "bob@localhost", "groupchat", nil, "service-unavailable"},
		{"error to bare: dropped", "bob@localhost", "error", nil, ""},
		{"chat to full: that resource", "bob@localhost/bot", "chat", []string{"bot"}, ""},
		{"full JID of an unavailable resource", "bob@localhost/quiet", "chat", []string{"quiet"}, ""},
		{"chat to a missing resource: as to bare", "bob@localhost/gone", "chat", []string{"desk", "phone"}, ""},
		{"headline to a missing resource: as to bare", "bob@localhost/gone", "headline", []string{"desk", "phone", "tv"}, ""},
		{"groupchat to a missing resource: error", "bob@localhost/gone", "groupchat", nil, "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "b-" + nextID()
			id := nextID()
			typ := ""
			if tc.typ != "" {
				typ = ` type="` + tc.typ + `"`
			}
			a.SendRaw(t, `<message id="`+id+`"`+typ+` to="`+tc.to+`"><body>`+body+`</body></message>`)
			// alice's stanzas are routed in order: once her ping is
			// answered, the message has been delivered or bounced.
			var errs []string
			a.SendRaw(t, `<iq type="get" id="sync-`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
			a.Expect(t, "sync", func(el *xmpp.Element) bool {
				if el.Get("id") == id && el.Get("type") == "error" {
					errs = append(errs, el.Child("", "error").Elements()[0].Local)
				}
				return el.Get("id") == "sync-"+id
			})
			if got := strings.Join(errs, ","); got != tc.errCond {
				t.Errorf("errors back %q, want %q", got, tc.errCond)
			}
			var got []string
			for name, u := range res {
				if slices.Contains(u.received(t), body) {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("delivered to %v, want %v", got, want)
			}
		})
	}

	// Only a negative-priority resource online: messages to the bare JID
	// wait offline (§8.5.2.2), and come at the next initial presence.
	for _, name := range []string{"desk", "phone", "tv", "quiet"} {
		res[name].Close()
	}
	// The server says so to bob's remaining resource once each has ended.
	res["bot"].expectAll(t, "the others gone",
		isPresence(res["desk"].JID.String(), "unavailable"),
		isPresence(res["phone"].JID.String(), "unavailable"),
		isPresence(res["tv"].JID.String(), "unavailable"))
	a.SendRaw(t, `<message type="chat" to="bob@localhost"><body>later</body></message>`)
	a.received(t) // routed
	if got := res["bot"].received(t); slices.Contains(got, "later") {
		t.Fatal("a negative-priority resource got a message to the bare JID")
	}
	later := login(t, s, bj, "later")
	later.SendRaw(t, `<presence/>`)
	later.Expect(t, "offline message", func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && b != nil && b.Text() == "later"
	})
}

// TestOfflineRaceWithLogin sends messages while the recipient comes online:
// each must reach that session, whether it was stored a moment before the
// initial presence or routed a moment after (bounded: 30 rounds).
func TestOfflineRaceWithLogin(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	bj := s.AddUser(t, "bob", "pw")
	a := online(t, s, s.AddUser(t, "alice", "pw"), "a")
	for i := range 30 {
		body := fmt.Sprintf("race-%d", i)
		b := login(t, s, bj, "b")
		a.SendRaw(t, `<message type="chat" to="bob@localhost"><body>`+body+`</body></message>`)
		b.SendRaw(t, `<presence/>`)
		b.Expect(t, body, func(el *xmpp.Element) bool {
			bd := el.Child("", "body")
			return el.Local == "message" && bd != nil && bd.Text() == body
		})
		b.Close()
		a.received(t)
		// Wait until bob's session is gone, so that the next round starts
		// offline.
		deadline := time.Now().Add(testenv.Timeout)
		for len(s.SessionsOf(bj)) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("bob's session did not end")
			}
			runtime.Gosched()
		}
	}
}

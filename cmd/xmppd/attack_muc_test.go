package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

const nsMUCUser = "http://jabber.org/protocol/muc#user"

// awaitEl reads c's stanzas until one that match accepts, for at most
// testenv.Timeout, or until ctx ends.
func awaitEl(ctx context.Context, c *testenv.Client, match func(*xmpp.Element) bool) (*xmpp.Element, error) {
	timer := time.NewTimer(testenv.Timeout)
	defer timer.Stop()
	for {
		select {
		case el, ok := <-c.In:
			if !ok {
				return nil, fmt.Errorf("%s: stream ended: %v", c.JID, <-c.Err)
			}
			if match(el) {
				return el, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("%s: timed out", c.JID)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// selfPresence matches the room's answer to a join or a leave of room:
// the occupant's own presence (status 110, XEP-0045 §7.2.3) or an error.
func selfPresence(room string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if el.Local != "presence" || !strings.HasPrefix(el.Get("from"), room+"/") {
			return false
		}
		if el.Get("type") == "error" {
			return true
		}
		x := el.Child(nsMUCUser, "x")
		if x == nil {
			return false
		}
		for _, st := range x.Elements() {
			if st.Local == "status" && st.Get("code") == "110" {
				return true
			}
		}
		return false
	}
}

// TestAttackJoinStorm has ten sessions join and leave rooms as fast as the
// server answers: six join and leave a shared room (every occupant sees
// every change) and, each time, create a room of their own and leave it,
// so that it is destroyed; three create rooms 30 at a time, past their
// owner limit (muc.max_rooms_per_owner, 20 here), then leave them all
// and start again. The limit refuses the 21st room with <not-allowed/>,
// a temporary room is forgotten when its last occupant leaves (each round
// the owner may create 20 again), and memory stays bounded.
func TestAttackJoinStorm(t *testing.T) {
	const maxRooms, perRound = 20, 30
	users := []string{"host"}
	for i := range 9 {
		users = append(users, fmt.Sprintf("storm%d", i))
	}
	tg := startTarget(t, "muc:\n  max_rooms_per_owner: 20\n", users...)
	const hall = "hall@conference.localhost"
	host := dialAs(t, tg.server, "127.0.0.1", "host")
	host.SendRaw(t, `<presence/>`)
	host.SendRaw(t, `<presence to="`+hall+`/host"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	if _, err := awaitEl(t.Context(), host, selfPresence(hall)); err != nil {
		t.Fatal(err)
	}
	// An instant room (§10.1.2): unlocked for everyone else.
	if iq := host.IQ(t, "set", hall, `<query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query>`); iq.Get("type") != "result" {
		t.Fatalf("instant room: %s", iq)
	}
	go func() { // the host reads on, or the room's broadcasts would fill its queue
		for range host.In {
		}
	}()
	var storm []*testenv.Client
	for _, u := range users[1:] {
		c := dialAs(t, tg.server, "127.0.0.1", u)
		c.SendRaw(t, `<presence/>`) // available: directed presence is tracked and bounded
		storm = append(storm, c)
	}
	var (
		joins, created, notAllowed atomic.Int32
		mu                         sync.Mutex
		problems                   []string
		fewer                      int // rounds in which an owner could create fewer than maxRooms
	)
	problem := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, s)
		}
	}
	// A write that fails shows as the wait for its answer failing.
	join := func(c *testenv.Client, room, nick string) {
		c.Send(`<presence to="` + room + `/` + nick + `"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	}
	leave := func(c *testenv.Client, room, nick string) {
		c.Send(`<presence type="unavailable" to="` + room + `/` + nick + `"/>`)
	}
	churn := func(ctx context.Context, n int, c *testenv.Client) {
		nick := fmt.Sprintf("churn%d", n)
		for i := 0; ctx.Err() == nil && i < 400; i++ {
			own := fmt.Sprintf("own-%d-%d@conference.localhost", n, i)
			for _, room := range []string{hall, own} {
				join(c, room, nick)
				el, err := awaitEl(ctx, c, selfPresence(room))
				if err != nil {
					if ctx.Err() == nil {
						problem(err.Error())
					}
					return
				}
				if el.Get("type") == "error" {
					problem(fmt.Sprintf("join %s: %s", room, testenv.ErrorCondition(el)))
					continue
				}
				joins.Add(1)
				leave(c, room, nick)
				if _, err := awaitEl(ctx, c, selfPresence(room)); err != nil {
					if ctx.Err() == nil {
						problem(err.Error())
					}
					return
				}
			}
		}
	}
	hoard := func(ctx context.Context, n int, c *testenv.Client) {
		for round := 0; ctx.Err() == nil && round < 50; round++ {
			rooms := make([]string, perRound)
			for i := range rooms {
				rooms[i] = fmt.Sprintf("hoard-%d-%d@conference.localhost", n, i)
				join(c, rooms[i], "hoarder")
			}
			var in []string
			for _, room := range rooms {
				el, err := awaitEl(ctx, c, selfPresence(room))
				if err != nil {
					if ctx.Err() == nil {
						problem(err.Error())
					}
					return
				}
				switch cond := testenv.ErrorCondition(el); {
				case el.Get("type") != "error":
					in = append(in, room)
					created.Add(1)
				case cond == xmpp.NotAllowed:
					notAllowed.Add(1)
				default:
					problem(fmt.Sprintf("join %s: %s", room, cond))
				}
			}
			if len(in) != maxRooms {
				mu.Lock()
				fewer++
				mu.Unlock()
				problem(fmt.Sprintf("round %d: %d rooms created, want %d", round, len(in), maxRooms))
			}
			for _, room := range in {
				leave(c, room, "hoarder")
			}
			for _, room := range in {
				if _, err := awaitEl(ctx, c, selfPresence(room)); err != nil {
					if ctx.Err() == nil {
						problem(err.Error())
					}
					return
				}
			}
		}
	}
	tg.attack.Run = func(ctx context.Context) {
		var wg sync.WaitGroup
		for i, c := range storm {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i < 6 {
					churn(ctx, i, c)
				} else {
					hoard(ctx, i, c)
				}
			}()
		}
		wg.Wait()
	}
	rep := tg.attack.Measure(t)
	t.Logf("%d joins and leaves; %d rooms created by hoarders, %d refused <not-allowed/>; problems: %v", joins.Load(), created.Load(), notAllowed.Load(), problems)
	if notAllowed.Load() == 0 {
		t.Error("no room refused with <not-allowed/> past muc.max_rooms_per_owner")
	}
	if joins.Load() == 0 || created.Load() == 0 {
		t.Error("the storm did not get going")
	}
	if fewer > 0 || len(problems) > 0 {
		t.Errorf("%d rounds in which an owner created fewer than %d rooms (rooms left behind?); %v", fewer, maxRooms, problems)
	}
	rep.CheckLatency(t)
	rep.CheckMemory(t, rssBound)
}

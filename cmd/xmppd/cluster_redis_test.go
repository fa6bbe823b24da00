package main

import (
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/xmpp"
)

// TestClusterRedisRestart is issue 21 item 1's Redis part. Two nodes share
// Postgres and a private Redis that the test kills and starts again,
// empty (it keeps nothing on disk). While Redis is down, two users on one
// node go on chatting and see each other's presence, and a message to a
// user on the other node comes back with an error. When it is back,
// each node writes its part of the registry again (its sessions and its
// liveness) and subscribes to the bus again, so that a user on node A
// reaches a user on node B, and B's presence reaches A, without anyone
// reconnecting.
func TestClusterRedisRestart(t *testing.T) {
	dsn := pgtest.DSN(t)
	rs := testenv.StartRedis(t)
	const prefix = "xmppd:"
	ctx := context.Background()
	a := startNode(t, "node-a", dsn, rs.Addr(), prefix, "")
	st := clusterStore(t, dsn)
	addAccounts(t, st, "", "alice@localhost", "bob@localhost", "carol@localhost")
	befriend(t, st, "alice@localhost", "bob@localhost")
	befriend(t, st, "alice@localhost", "carol@localhost")
	b := startNode(t, "node-b", dsn, rs.Addr(), prefix, "")

	alice := a.dial(t, "alice@localhost", "desk", "", 0)
	online(t, alice)
	carol := a.dial(t, "carol@localhost", "desk", "", 0)
	online(t, carol)
	bob := b.dial(t, "bob@localhost", "desk", "", 0)
	online(t, bob)
	presence := func(c *testenv.SMClient, from, show string) {
		t.Helper()
		c.Expect(from+"'s presence ("+show+")", func(el *xmpp.Element) bool {
			s := el.Child(xmpp.NSClient, "show")
			return el.Local == "presence" && el.Get("from") == from && s != nil && s.Text() == show
		})
	}
	chatTo(alice, "bob@localhost", "before")
	bob.Expect("a message from the other node", hasBody("before"))

	rs.Stop()
	awaitLog(t, a, "heartbeat failed")
	chatTo(alice, "carol@localhost", "while Redis is down")
	carol.Expect("a message on the same node, Redis down", hasBody("while Redis is down"))
	chatTo(carol, "alice@localhost/desk", "and back")
	alice.Expect("the answer, Redis down", hasBody("and back"))
	carol.Send(`<presence><show>away</show></presence>`)
	presence(alice, "carol@localhost/desk", "away")
	// Where bob is, and the lock on his offline queue, are in Redis: a
	// message to him comes back to its sender with an error rather than
	// vanish.
	alice.Send(`<message type="chat" id="lost?" to="bob@localhost"><body>while Redis is down</body></message>`)
	alice.Expect("the error for a message to the other node, Redis down", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Get("id") == "lost?" && el.Get("type") == "error"
	})

	rs.Start() // empty
	// Each node finds its liveness key gone and writes its sessions again;
	// each bus subscribes again.
	awaitLog(t, a, "writing its sessions again")
	awaitLog(t, b, "writing its sessions again")
	awaitLog(t, b, "cluster bus: subscribed again")
	awaitLog(t, a, "cluster bus: subscribed again")
	// go-redis fails dials fast for up to a second after Redis answers
	// again (its pool's circuit breaker probes once a second): a poll of
	// the node list that succeeds again says the registry's client is
	// back.
	awaitLog(t, a, "watching the nodes again")
	awaitLog(t, b, "watching the nodes again")
	rc := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	defer rc.Close()
	for _, full := range []string{"alice@localhost/desk", "bob@localhost/desk", "carol@localhost/desk"} {
		bare, res, _ := strings.Cut(full, "/")
		await(t, full+" in the registry again", func() bool {
			ok, err := rc.HExists(ctx, prefix+"pres:"+bare, res).Result()
			return err == nil && ok
		})
	}

	chatTo(alice, "bob@localhost", "after")
	bob.Expect("a message from the other node, after the restart", hasBody("after"))
	chatTo(bob, "alice@localhost", "and back again")
	alice.Expect("the answer from the other node, after the restart", hasBody("and back again"))
	bob.Send(`<presence><show>dnd</show></presence>`)
	presence(alice, "bob@localhost/desk", "dnd")
	alice.Send(`<presence><show>chat</show></presence>`)
	presence(bob, "alice@localhost/desk", "chat")
}

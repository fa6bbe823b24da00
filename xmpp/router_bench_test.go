package xmpp

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"
)

// benchSession is a routable session without a connection: the benchmark
// takes what is queued for it, so that it measures the router and the
// queue, not a network.
func benchSession(b *testing.B, s *Server, full string) *Session {
	j := jid.MustParse(full)
	sess := &Session{
		srv: s, jid: j, full: j.String(), bare: j.Bare().String(),
		closing: make(chan struct{}), live: true,
	}
	sess.cur.Store(&conn{srv: s})
	sess.available = true
	sess.writing = true // no writer: the benchmark empties the queue itself
	s.router.register(sess, 0, 0)
	return sess
}

// BenchmarkRouteMessage routes a chat message from one local session to
// another by full JID and by bare JID: address parsing, the session lookup,
// one serialisation and the enqueue.
func BenchmarkRouteMessage(b *testing.B) {
	s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.init()
	alice := benchSession(b, s, "alice@example.com/desk")
	bob := benchSession(b, s, "bob@example.com/phone")
	run := func(b *testing.B, to string) {
		msg, err := ParseElement([]byte(chatMessage))
		if err != nil {
			b.Fatal(err)
		}
		msg.Set("to", to)
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			st := msg.ShallowCopy()
			st.Set("from", alice.full)
			s.router.Route(ctx, st, alice)
			bob.wmu.Lock()
			if len(bob.queue) != 1 {
				b.Fatalf("%d stanzas queued for bob, want 1", len(bob.queue))
			}
			bob.queue, bob.queued = bob.queue[:0], 0
			bob.wmu.Unlock()
		}
	}
	for _, to := range []string{"bob@example.com/phone", "bob@example.com"} {
		b.Run(to, func(b *testing.B) { run(b, to) })
	}
	// The stages the router runs for a message, each with a hook that lets
	// it through, as carbons (MessageIn) and client state indication
	// (Deliver) do for most messages: the price of the stages themselves.
	pass := func(context.Context, *StanzaEvent) bool { return false }
	for _, stage := range []Stage{MessageIn, Deliver} {
		s.Hook(stage, 0, pass)
	}
	for _, to := range []string{"bob@example.com/phone", "bob@example.com"} {
		b.Run("hooked/"+to, func(b *testing.B) { run(b, to) })
	}
}

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
	s.router.register(sess, 0)
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
	for _, to := range []string{"bob@example.com/phone", "bob@example.com"} {
		b.Run(to, func(b *testing.B) {
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
		})
	}
}

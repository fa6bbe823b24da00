package xmpp

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// tally is a Metrics that keeps what it is told, for the core's side of
// the hook (internal/metrics tests the Prometheus side with real servers).
type tally struct {
	mu              sync.Mutex
	in, out, routed [NumStanzaKinds]int
	auth            map[string]int
	sessionsDropped int
	dropped         [NumDropReasons]int
}

func (m *tally) StanzaIn(k StanzaKind)  { m.mu.Lock(); m.in[k]++; m.mu.Unlock() }
func (m *tally) StanzaOut(k StanzaKind) { m.mu.Lock(); m.out[k]++; m.mu.Unlock() }
func (m *tally) Routed(k StanzaKind, d time.Duration) {
	m.mu.Lock()
	m.routed[k]++
	m.mu.Unlock()
}
func (m *tally) AuthFailed(mech string, r AuthReason) {
	m.mu.Lock()
	m.auth[mech+" "+r.String()]++
	m.mu.Unlock()
}
func (m *tally) SessionDropped()            { m.mu.Lock(); m.sessionsDropped++; m.mu.Unlock() }
func (m *tally) StanzaDropped(r DropReason) { m.mu.Lock(); m.dropped[r]++; m.mu.Unlock() }

// idleSession is a routable session whose connection never writes: what is
// delivered to it stays in its queue.
func idleSession(s *Server, full string) *Session {
	j := jid.MustParse(full)
	sess := &Session{srv: s, jid: j, full: j.String(), bare: j.Bare().String(), closing: make(chan struct{}), ended: make(chan struct{})}
	sess.cur.Store(&conn{srv: s})
	sess.available = true
	s.router.register(sess, 0, 0)
	return sess
}

// A message queued for a session counts out once; a full queue drops the
// session and the stanza once, however much more comes for it; Stats sees
// the sessions. Headlines, because what else comes for a closing session
// goes on by the bare JID's rules (TestMessageToClosingSessionIsKept),
// where a headline nobody takes is dropped quietly and a chat message
// would bounce to alice, whose queue is as small.
func TestMetricsHook(t *testing.T) {
	m := &tally{auth: map[string]int{}}
	s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), QueueSize: 2, Metrics: m,
		PingInterval: -1} // no keepalive: these sessions have no connection to ping
	s.init()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	alice := idleSession(s, "alice@example.com/desk")
	idleSession(s, "bob@example.com/phone")
	if st := s.Stats(); st.TCP != 2 || st.WebSocket+st.BOSH+st.DirectTLS+st.S2SIn+st.S2SOut+st.Hibernated != 0 {
		t.Errorf("Stats = %+v, want 2 TCP sessions", st)
	}
	msg, err := ParseElement([]byte(`<message xmlns="jabber:client" type="headline" to="bob@example.com/phone"><body>hi</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		st := msg.ShallowCopy()
		st.Set("from", alice.full)
		s.router.Route(context.Background(), st, alice)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out[MessageStanza] != 2 || m.out[PresenceStanza]+m.out[IQStanza] != 0 {
		t.Errorf("out = %v, want 2 messages (the queue's size)", m.out)
	}
	if m.sessionsDropped != 1 || m.dropped[DropSessionQueue] != 1 {
		t.Errorf("sessions dropped %d, stanzas dropped %v; want 1 and 1", m.sessionsDropped, m.dropped)
	}
}

// Counted authentication failures are classed by reason, the ones that
// tested no password as protocol failures.
func TestAuthReasons(t *testing.T) {
	m := &tally{auth: map[string]int{}}
	a := &authenticator{metrics: m, mech: "PLAIN"}
	a.failed("bad password")
	a.failed("account locked after failures from many addresses")
	a.failed("token: expired")
	a.failed("storage: connection refused")
	a.refused("malformed PLAIN message")
	for _, want := range []string{"PLAIN credentials", "PLAIN locked", "PLAIN token", "PLAIN storage", "PLAIN protocol"} {
		if m.auth[want] != 1 {
			t.Errorf("%q counted %d times, want 1 (all: %v)", want, m.auth[want], m.auth)
		}
	}
}

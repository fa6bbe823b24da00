package xmpp

import (
	"context"
	"errors"
	"time"
)

// NSPing is XMPP Ping's namespace (XEP-0199), which the keepalive uses.
const NSPing = "urn:xmpp:ping"

// keepalive checks every session a few times per PingInterval: a silent
// one gets a ping (XEP-0199 §4.2), and a connection that cannot answer it
// within PingTimeout is dead. It runs until the server stops.
func (s *Server) keepalive() {
	defer s.wg.Done()
	ctx := s.ctx
	tick := time.NewTicker(s.PingInterval / 4)
	defer tick.Stop()
	inFlight := make(map[*Session]bool)
	done := make(chan *Session)
	for {
		select {
		case <-ctx.Done():
			return
		case sess := <-done:
			delete(inFlight, sess)
		case <-tick.C:
			s.router.each(func(sess *Session) {
				// Web transports watch their connections themselves
				// (WebSocket pings, BOSH's inactivity timeout).
				mode := sess.c().mode
				if inFlight[sess] || mode == webSecure || mode == webInsecure || sess.Hibernated() || sess.Idle() < s.PingInterval {
					return
				}
				inFlight[sess] = true
				go func() {
					s.ping(ctx, sess)
					select {
					case done <- sess:
					case <-ctx.Done():
					}
				}()
			})
		}
	}
}

func (s *Server) ping(ctx context.Context, sess *Session) {
	ctx, cancel := context.WithTimeout(ctx, s.PingTimeout)
	defer cancel()
	iq := NewElement(NSClient, "iq", "type", "get")
	iq.Add(NewElement(NSPing, "ping"))
	if _, err := sess.Request(ctx, iq); errors.Is(err, context.DeadlineExceeded) {
		if sess.resumable() {
			// The connection is dead; the session may be resumed on
			// another (XEP-0198).
			sess.logger().Info("no answer to ping: connection dropped")
			sess.c().raw.Close()
			return
		}
		sess.Close(&StreamError{Condition: ConnectionTimeout, Text: "no answer to ping"})
	}
}

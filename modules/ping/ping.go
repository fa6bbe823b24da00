// Package ping implements XMPP Ping (XEP-0199) both ways: it answers pings
// to the server and to accounts, and pings clients that have been silent for
// a while, closing the streams of those that do not answer.
package ping

import (
	"context"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Module is the ping module. Interval is how long a client may be silent
// before it is pinged, Timeout how long it has to answer; zero values take
// the server's PingInterval and PingTimeout, a negative Interval turns
// keepalive pings off.
type Module struct {
	Interval, Timeout time.Duration
}

// Register implements xmpp.Module.
func (m Module) Register(s *xmpp.Server) {
	pong := func(context.Context, *xmpp.IQ) (*xmpp.Element, error) { return nil, nil }
	for _, t := range []xmpp.Target{xmpp.ToServer, xmpp.ToAccount} {
		s.AddFeature(t, NS)
		s.HandleIQ(t, "get", NS, "ping", pong)
	}
	if m.Interval == 0 {
		m.Interval = s.PingInterval
	}
	if m.Timeout == 0 {
		m.Timeout = s.PingTimeout
	}
	if m.Interval < 0 {
		return
	}
	go m.keepalive(s)
}

// keepalive checks every session a few times per interval; a silent one gets
// a ping, and a connection that cannot answer it in time is dead.
func (m Module) keepalive(s *xmpp.Server) {
	ctx := s.Context()
	tick := time.NewTicker(m.Interval / 4)
	defer tick.Stop()
	inFlight := make(map[*xmpp.Session]bool)
	done := make(chan *xmpp.Session)
	for {
		select {
		case <-ctx.Done():
			return
		case sess := <-done:
			delete(inFlight, sess)
		case <-tick.C:
			s.Router().Each(func(sess *xmpp.Session) {
				if inFlight[sess] || sess.Idle() < m.Interval {
					return
				}
				inFlight[sess] = true
				go func() {
					m.ping(ctx, sess)
					select {
					case done <- sess:
					case <-ctx.Done():
					}
				}()
			})
		}
	}
}

func (m Module) ping(ctx context.Context, sess *xmpp.Session) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	iq := xmpp.NewElement(xmpp.NSClient, "iq", "type", "get")
	iq.Add(xmpp.NewElement(NS, "ping"))
	_, err := sess.Request(ctx, iq)
	if err == context.DeadlineExceeded {
		sess.Close(&xmpp.StreamError{Condition: xmpp.ConnectionTimeout, Text: "no answer to ping"})
	}
}

// Package ping answers XMPP Ping (XEP-0199) for the server and for
// accounts. The server's own keepalive pings to silent clients are the
// core's (Server.PingInterval).
package ping

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0199 namespace.
const NS = xmpp.NSPing

// Module is the ping module.
type Module struct{}

// Register implements xmpp.Module.
func (m Module) Register(s *xmpp.Server) {
	pong := func(context.Context, *xmpp.IQ) (*xmpp.Element, error) { return nil, nil }
	for _, t := range []xmpp.Target{xmpp.ToServer, xmpp.ToAccount} {
		s.AddFeature(t, NS)
		s.HandleIQ(t, "get", NS, "ping", pong)
	}
}

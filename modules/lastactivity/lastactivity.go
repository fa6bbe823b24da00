// Package lastactivity answers Last Activity queries (XEP-0012) to the
// server with its uptime (XEP-0012 §5). Queries to accounts need presence
// subscriptions to be authorised and come with the roster.
package lastactivity

import (
	"context"
	"strconv"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0012 namespace.
const NS = "jabber:iq:last"

// Module is the last activity module.
type Module struct{}

// Register implements xmpp.Module.
func (Module) Register(s *xmpp.Server) {
	s.AddFeature(xmpp.ToServer, NS)
	s.HandleIQ(xmpp.ToServer, "get", NS, "query", func(context.Context, *xmpp.IQ) (*xmpp.Element, error) {
		secs := int64(time.Since(s.Started()) / time.Second)
		return xmpp.NewElement(NS, "query", "seconds", strconv.FormatInt(secs, 10)), nil
	})
}

// Package entitytime answers Entity Time queries (XEP-0202) to the server.
package entitytime

import (
	"context"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0202 namespace.
const NS = "urn:xmpp:time"

// Module is the entity time module; Now defaults to time.Now.
type Module struct {
	Now func() time.Time
}

// Register implements xmpp.Module.
func (m Module) Register(s *xmpp.Server) {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	s.AddFeature(xmpp.ToServer, NS)
	s.HandleIQ(xmpp.ToServer, "get", NS, "time", func(context.Context, *xmpp.IQ) (*xmpp.Element, error) {
		t := now()
		q := xmpp.NewElement(NS, "time")
		q.Add(xmpp.NewElement(NS, "tzo").Add(xmpp.Text(t.Format("-07:00"))))
		q.Add(xmpp.NewElement(NS, "utc").Add(xmpp.Text(t.UTC().Format("2006-01-02T15:04:05.000Z"))))
		return q, nil
	})
}

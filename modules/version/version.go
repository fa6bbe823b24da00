// Package version answers Software Version queries (XEP-0092) to the server.
package version

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Module is the software version module. OS, when set, is reported too;
// it is left out by default so as not to tell attackers more than needed.
type Module struct {
	OS string
}

// Register implements xmpp.Module.
func (m Module) Register(s *xmpp.Server) {
	s.AddFeature(xmpp.ToServer, NS)
	s.HandleIQ(xmpp.ToServer, "get", NS, "query", func(context.Context, *xmpp.IQ) (*xmpp.Element, error) {
		q := xmpp.NewElement(NS, "query")
		q.Add(xmpp.NewElement(NS, "name").Add(xmpp.Text("xmppd")))
		q.Add(xmpp.NewElement(NS, "version").Add(xmpp.Text(s.Version)))
		if m.OS != "" {
			q.Add(xmpp.NewElement(NS, "os").Add(xmpp.Text(m.OS)))
		}
		return q, nil
	})
}

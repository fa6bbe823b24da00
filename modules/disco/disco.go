// Package disco answers service discovery (XEP-0030) for the server and for
// accounts, from the features the other modules declare.
package disco

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Module is the service discovery module. Name is the server's identity name.
type Module struct {
	Name string
}

// Register implements xmpp.Module.
func (m Module) Register(s *xmpp.Server) {
	for _, t := range []xmpp.Target{xmpp.ToServer, xmpp.ToAccount} {
		s.AddFeature(t, NSInfo)
		s.AddFeature(t, NSItems)
	}
	name := m.Name
	if name == "" {
		name = "xmppd"
	}
	s.HandleIQ(xmpp.ToServer, "get", NSInfo, "query", func(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
		return info(iq, s.Features(xmpp.ToServer), "server", "im", name)
	})
	s.HandleIQ(xmpp.ToAccount, "get", NSInfo, "query", func(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
		return info(iq, s.Features(xmpp.ToAccount), "account", "registered", "")
	})
	// The server's items are its components (the MUC service); an
	// account's are none yet.
	items := func(components bool) xmpp.IQHandler {
		return func(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
			if node := iq.Payload.Get("node"); node != "" {
				return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound}
			}
			q := xmpp.NewElement(NSItems, "query")
			if components {
				for _, d := range s.Components() {
					q.Add(xmpp.NewElement(NSItems, "item", "jid", d))
				}
			}
			return q, nil
		}
	}
	s.HandleIQ(xmpp.ToServer, "get", NSItems, "query", items(true))
	s.HandleIQ(xmpp.ToAccount, "get", NSItems, "query", items(false))
}

func info(iq *xmpp.IQ, features []string, category, typ, name string) (*xmpp.Element, error) {
	if node := iq.Payload.Get("node"); node != "" {
		// No nodes yet (XEP-0030 §3.1).
		return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound}
	}
	q := xmpp.NewElement(NSInfo, "query")
	id := xmpp.NewElement(NSInfo, "identity", "category", category, "type", typ)
	if name != "" {
		id.Set("name", name)
	}
	q.Add(id)
	for _, f := range features {
		q.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
	}
	return q, nil
}

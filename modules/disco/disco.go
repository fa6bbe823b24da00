// Package disco answers service discovery (XEP-0030) for the server and for
// accounts, from the identities, features, items and extended information
// forms (XEP-0128) the other modules declare (Server.AddIdentity,
// AddFeature, AddItems, AddInfoForm), and publishes the server's contact
// addresses (XEP-0157).
package disco

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0030.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Module is the service discovery module.
type Module struct {
	// Name is the server's identity name; default "xmppd".
	Name string
	// Contacts are the server's contact addresses (XEP-0157), served in
	// its disco#info when any is set.
	Contacts Addresses
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
	s.AddIdentity(xmpp.ToServer, xmpp.Identity{Category: "server", Type: "im", Name: name})
	s.AddIdentity(xmpp.ToAccount, xmpp.Identity{Category: "account", Type: "registered"})
	if fm := m.Contacts.form(); fm != nil {
		s.AddInfoForm(xmpp.ToServer, fm)
	}
	// The server's items are its components (the chat room service, the
	// upload service), and what modules add.
	s.AddItems(xmpp.ToServer, func(context.Context, jid.JID, jid.JID) []xmpp.DiscoItem {
		var items []xmpp.DiscoItem
		for _, d := range s.Components() {
			items = append(items, xmpp.DiscoItem{JID: d})
		}
		return items
	})
	for _, t := range []xmpp.Target{xmpp.ToServer, xmpp.ToAccount} {
		s.HandleIQ(t, "get", NSInfo, "query", func(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
			if node := iq.Payload.Get("node"); node != "" {
				n, ok := s.DiscoNodeOf(ctx, t, iq.To, iq.From, node)
				if !ok {
					return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound}
				}
				q := info(n.Identities, n.Features, nil)
				q.Set("node", node)
				return q, nil
			}
			return info(s.Identities(t), s.Features(t), s.InfoForms(t)), nil
		})
		s.HandleIQ(t, "get", NSItems, "query", func(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
			items := []xmpp.DiscoItem(nil)
			node := iq.Payload.Get("node")
			if node != "" {
				n, ok := s.DiscoNodeOf(ctx, t, iq.To, iq.From, node)
				if !ok {
					return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound}
				}
				items = n.Items
			} else {
				items = s.Items(ctx, t, iq.To, iq.From)
			}
			q := xmpp.NewElement(NSItems, "query")
			if node != "" {
				q.Set("node", node)
			}
			for _, it := range items {
				el := xmpp.NewElement(NSItems, "item", "jid", it.JID)
				if it.Node != "" {
					el.Set("node", it.Node)
				}
				if it.Name != "" {
					el.Set("name", it.Name)
				}
				q.Add(el)
			}
			return q, nil
		})
	}
}

func info(ids []xmpp.Identity, features []string, forms []*xmpp.Element) *xmpp.Element {
	q := xmpp.NewElement(NSInfo, "query")
	for _, id := range ids {
		el := xmpp.NewElement(NSInfo, "identity", "category", id.Category, "type", id.Type)
		if id.Name != "" {
			el.Set("name", id.Name)
		}
		q.Add(el)
	}
	for _, f := range features {
		q.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
	}
	// XEP-0128 §2: the forms come after the identities and features.
	for _, fm := range forms {
		q.Add(fm)
	}
	return q
}

package roster

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// sessionsGone tells this node's sessions that sessions of a cluster node
// that died are unavailable (RFC 6121 §4.5.2 as the server would have said
// it for them): each gone resource's subscribers here, and the account's
// own resources here, get unavailable presence from its full JID. Every
// surviving node does this for the sessions it holds, so nothing goes over
// the bus.
func (m *Module) sessionsGone(ctx context.Context, gone map[string][]string) {
	for owner, resources := range gone {
		if !m.local(owner) {
			continue
		}
		subscribers := m.subscribers(ctx, owner)
		for _, res := range resources {
			full, err := jid.Parse(owner + "/" + res)
			if err != nil {
				continue
			}
			p := xmpp.NewElement(xmpp.NSClient, "presence", "from", full.String(), "type", "unavailable")
			f := xmpp.NewFanout(p)
			for _, c := range subscribers {
				if m.local(c) {
					m.srv.Router().DeliverFanoutEach(ctx, c, f, func(s *xmpp.Session) bool {
						ok, _ := s.Available()
						return ok
					})
				}
			}
			m.srv.Router().DeliverFanoutEach(ctx, owner, f, func(s *xmpp.Session) bool {
				ok, _ := s.Available()
				return ok
			})
		}
	}
}

// announceAgain sends the presence of every available session here again,
// to its subscribers and the account's resources, on every node: the
// other nodes may have taken them for gone (their entries had expired) and
// told their contacts so.
func (m *Module) announceAgain(ctx context.Context) {
	for _, s := range m.srv.LocalSessions() {
		m.Rebroadcast(ctx, s, func(p *xmpp.Element) *xmpp.Element { return p })
	}
}

package xmpp

import (
	"context"
	"sort"

	"mellium.im/xmpp/jid"
)

// A Component serves a domain of its own below the server's, such as the
// multi-user chat service on conference.<domain>: the router hands it every
// stanza addressed to that domain or to a JID in it, with 'from' stamped.
// It answers through Router.Route, like any module.
type Component interface {
	HandleStanza(ctx context.Context, st *Element, to jid.JID, origin *Session)
}

// AddComponent routes domain to c. It must be called from Register: the
// router reads the components without a lock, since none is added once the
// server serves.
func (s *Server) AddComponent(domain string, c Component) {
	s.setup()
	if s.components == nil {
		s.components = make(map[string]Component)
	}
	s.components[domain] = c
}

// Components returns the domains of the components, sorted, for service
// discovery (XEP-0030 items of the server).
func (s *Server) Components() []string {
	domains := make([]string, 0, len(s.components))
	for d := range s.components {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	return domains
}

func (s *Server) component(domain string) Component { return s.components[domain] }

// Local reports whether domain is served here: the server's own, or a
// component's.
func (s *Server) Local(domain string) bool {
	return domain == s.Domain || s.components[domain] != nil
}

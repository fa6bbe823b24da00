package carbons_test

import (
	"context"

	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// defaultModules are the modules of a default server on srv's store.
func defaultModules(srv *xmpp.Server) []xmpp.Module {
	return modules.Default(modules.Options{Store: srv.Store})
}

// sessionWatch is a module that reports hibernated sessions, so that a
// test waits for the hibernation rather than for a while.
type sessionWatch struct{ hibernated chan<- *xmpp.Session }

func (w sessionWatch) Register(s *xmpp.Server) {
	s.HookSession(xmpp.SessionHibernated, 0, func(_ context.Context, sess *xmpp.Session) {
		select {
		case w.hibernated <- sess:
		default:
		}
	})
}

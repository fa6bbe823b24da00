// Package modules lists the feature modules a default xmppd runs; each
// module is a package of its own below this one, named for what it does.
package modules

import (
	"github.com/xmppd/xmppd/modules/disco"
	"github.com/xmppd/xmppd/modules/entitytime"
	"github.com/xmppd/xmppd/modules/lastactivity"
	"github.com/xmppd/xmppd/modules/ping"
	"github.com/xmppd/xmppd/modules/version"
	"github.com/xmppd/xmppd/xmpp"
)

// Default returns the modules of a default server.
func Default() []xmpp.Module {
	return []xmpp.Module{
		disco.Module{},
		ping.Module{},
		version.Module{},
		entitytime.Module{},
		lastactivity.Module{},
	}
}

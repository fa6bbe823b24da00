// Package modules lists the feature modules a default xmppd runs; each
// module is a package of its own below this one, named for what it does.
package modules

import (
	"time"

	"github.com/xmppd/xmppd/modules/blocking"
	"github.com/xmppd/xmppd/modules/carbons"
	"github.com/xmppd/xmppd/modules/csi"
	"github.com/xmppd/xmppd/modules/disco"
	"github.com/xmppd/xmppd/modules/entitytime"
	"github.com/xmppd/xmppd/modules/lastactivity"
	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/modules/offline"
	"github.com/xmppd/xmppd/modules/pep"
	"github.com/xmppd/xmppd/modules/ping"
	"github.com/xmppd/xmppd/modules/private"
	"github.com/xmppd/xmppd/modules/push"
	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/modules/vcard"
	"github.com/xmppd/xmppd/modules/version"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Options are what the default modules need from the rest of the server.
type Options struct {
	// Store is the server's storage.
	Store storage.Store
	// MaxRosterItems and MaxOfflineMessages bound each account's roster
	// and offline queue, MaxOfflineBytes all offline queues together, and
	// MaxDirectedPresences the entities one session may send directed
	// presence to; zero selects the modules' defaults, a negative value
	// means no limit.
	MaxRosterItems, MaxOfflineMessages int
	MaxOfflineBytes                    int64
	MaxDirectedPresences               int
	// MaxVCardBytes bounds one account's serialised vCard (XEP-0054),
	// MaxPrivateBytes one element in its private storage (XEP-0049) and
	// MaxPrivateElements how many it stores: zero selects the modules'
	// defaults, a negative value means no limit.
	MaxVCardBytes, MaxPrivateBytes, MaxPrivateElements int
	// MaxPEPNodes, MaxPEPItems and MaxPEPItemBytes are pep.Module's
	// MaxNodes, MaxItems and MaxItemBytes: zero selects its defaults, a
	// negative value means no limit.
	MaxPEPNodes, MaxPEPItems, MaxPEPItemBytes int
	// MUC runs the multi-user chat service on MUCDomain (default
	// conference.<domain>).
	MUC       bool
	MUCDomain string
	// MUCMaxRoomsPerOwner is muc.Service.MaxRoomsPerOwner: zero selects
	// its default, a negative value means no limit.
	MUCMaxRoomsPerOwner int
	// MUCMaxRoomsPerSession is muc.Service.MaxRoomsPerSession, likewise.
	MUCMaxRoomsPerSession int
	// MUCHosting shares the rooms between the nodes of a cluster
	// (muc.Service.Hosting); nil on a single node.
	MUCHosting muc.Hosting
	// Archive configures the message archive (XEP-0313).
	Archive Archive
	// Registration configures account creation by in-band registration
	// (XEP-0077); the zero value refuses it. Password changes and account
	// removal by their owners are always on.
	Registration register.Creation
	// Contacts are the server's contact addresses (XEP-0157), published in
	// its service discovery information.
	Contacts disco.Addresses
	// Upload, when set, runs the HTTP file upload service (XEP-0363) with
	// these settings; its Store is set to Store when nil.
	Upload *upload.Service
}

// Archive configures the message archive of accounts; the zero value
// archives every account's messages, kept for ever.
type Archive struct {
	// Disabled turns the archive off, the rooms' too.
	Disabled bool
	// Default is what is archived for an account that set no preferences:
	// "always" (when empty), "never" or "roster".
	Default string
	// MaxAge and MaxMessages are mam.Module's retention settings.
	MaxAge      time.Duration
	MaxMessages int
}

// Default returns the modules of a default server.
func Default(o Options) []xmpp.Module {
	rost := &roster.Module{Store: o.Store, MaxItems: o.MaxRosterItems,
		MaxDirected: o.MaxDirectedPresences}
	pushMod := &push.Module{Store: o.Store}
	pepMod := &pep.Module{Store: o.Store, Roster: rost, Docs: o.Store,
		MaxNodes: o.MaxPEPNodes, MaxItems: o.MaxPEPItems, MaxItemBytes: o.MaxPEPItemBytes}
	vcardMod := &vcard.Module{Store: o.Store, MaxBytes: o.MaxVCardBytes, Presence: rost, Changed: pepMod.VCardChanged}
	pepMod.Avatars = vcardMod
	mods := []xmpp.Module{
		disco.Module{Contacts: o.Contacts},
		ping.Module{},
		version.Module{},
		entitytime.Module{},
		lastactivity.Module{},
		rost,
		&blocking.Module{Store: o.Store, Roster: rost},
		&offline.Module{Store: o.Store, Max: o.MaxOfflineMessages, MaxTotalBytes: o.MaxOfflineBytes},
		&carbons.Module{},
		&csi.Module{},
		pushMod,
		vcardMod,
		&private.Module{Store: o.Store, MaxBytes: o.MaxPrivateBytes, MaxElements: o.MaxPrivateElements,
			Changed: pepMod.PrivateChanged},
		pepMod,
		&register.Module{Store: o.Store, Invites: o.Store, Creation: o.Registration},
	}
	// One id generator for the accounts' archives and the rooms': ids stay
	// unique and ordered across both (mam.IDs).
	var ids *mam.IDs
	var rooms storage.Archive
	if !o.Archive.Disabled {
		ids = mam.NewIDs()
		rooms = o.Store
		mods = append(mods, &mam.Module{Store: o.Store, Roster: rost, Default: o.Archive.Default,
			MaxAge: o.Archive.MaxAge, MaxMessages: o.Archive.MaxMessages, IDs: ids})
	}
	if o.MUC {
		mods = append(mods, &muc.Service{Domain: o.MUCDomain, Store: o.Store, MaxRoomsPerOwner: o.MUCMaxRoomsPerOwner,
			MaxRoomsPerSession: o.MUCMaxRoomsPerSession,
			Mentions:           pushMod.Mention, Archive: rooms, IDs: ids, Hosting: o.MUCHosting})
	}
	if o.Upload != nil {
		if o.Upload.Store == nil {
			o.Upload.Store = o.Store
		}
		mods = append(mods, o.Upload)
	}
	return mods
}

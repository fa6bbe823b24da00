package mam

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of this package and of the payloads it looks for.
const (
	NS = "urn:xmpp:mam:2"
	// NSExtended announces the before-id, after-id and ids fields
	// (XEP-0313 §7.1).
	NSExtended = NS + "#extended"
	// NSSID is XEP-0359's: <stanza-id/>.
	NSSID     = "urn:xmpp:sid:0"
	NSForward = "urn:xmpp:forward:0"
	NSDelay   = "urn:xmpp:delay"
	// NSHints carries <no-store/>, <no-permanent-store/> and <store/>
	// (XEP-0334).
	NSHints = "urn:xmpp:hints"
	// Payloads that make a message without a body worth archiving:
	// receipts (XEP-0184), chat markers (XEP-0333), corrections
	// (XEP-0308) and retractions (XEP-0424, and the fastening it used
	// before).
	NSReceipts = "urn:xmpp:receipts"
	NSMarkers  = "urn:xmpp:chat-markers:0"
	NSCorrect  = "urn:xmpp:message-correct:0"
	NSRetract  = "urn:xmpp:message-retract:1"
	NSRetract0 = "urn:xmpp:message-retract:0"
	NSFasten   = "urn:xmpp:fasten:0"
	nsCarbons  = "urn:xmpp:carbons:2"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
)

// Archiving defaults (XEP-0313 §6).
const (
	Always = "always"
	Never  = "never"
	Roster = "roster"
)

// Defaults of the Module's fields.
const (
	DefaultPruneInterval = time.Hour
	// DefaultMaxPage is the largest page a query may ask for; a larger
	// <max/> is refused with <policy-violation/>.
	DefaultMaxPage = 250
	// DefaultPage is the page size of a query without <max/>.
	DefaultPage = 50
)

// Priority is where the module's message hooks run: after the hooks of
// priority 0 and above (a filter that drops a message has done so before it
// is archived), before Message Carbons (carbons.Priority, -100), so that
// the copies they make carry the archive's stanza-id.
const Priority = -50

// A RosterLookup tells whether contact is in owner's roster (a stored item
// or a shared group), for the "roster" default.
type RosterLookup interface {
	InRoster(ctx context.Context, owner, contact string) (bool, error)
}

// Module archives the messages of the server's accounts and answers their
// queries. Store is required; the rest have defaults.
type Module struct {
	Store storage.Archive
	// Roster answers the "roster" default; without it, nobody is in a
	// roster and "roster" archives only the JIDs listed as always.
	Roster RosterLookup
	// Default is what is archived for an account that set no preferences:
	// Always (the default), Never or Roster.
	Default string
	// MaxAge removes messages older than it; zero keeps them.
	MaxAge time.Duration
	// MaxMessages bounds each archive, removing the oldest; zero or less
	// is no limit.
	MaxMessages int
	// PruneInterval is how often the pruner runs when MaxAge or
	// MaxMessages is set.
	PruneInterval time.Duration
	// Sync appends each message before it is routed, instead of handing
	// it to the module's batching writer.
	Sync bool
	// IDs makes the archive ids; nil: a generator of the module's own.
	IDs *IDs

	srv   *xmpp.Server
	log   *slog.Logger
	w     writer
	prefs prefsCache
	// rerouted remembers the stanza-ids stamped on messages that went to
	// the Undeliverable stage: offline storage may route such a message
	// again (a session became available meanwhile), and it is archived
	// once.
	rerouted struct {
		mu   sync.Mutex
		ring [64]*xmpp.Element
		next int
	}
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "mam")
	if m.Default == "" {
		m.Default = Always
	}
	if m.IDs == nil {
		m.IDs = NewIDs()
	}
	if m.PruneInterval <= 0 {
		m.PruneInterval = DefaultPruneInterval
	}
	m.w.init(s, m.Store, m.log)
	m.prefs.init()
	for _, f := range []string{NS, NSExtended, NSSID} {
		s.AddFeature(xmpp.ToAccount, f)
	}
	s.HandleIQ(xmpp.ToAccount, "set", NS, "query", m.query)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "query", m.form)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "metadata", m.metadata)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "prefs", m.getPrefs)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "prefs", m.setPrefs)
	s.Hook(xmpp.MessageOut, Priority, m.sent)
	s.Hook(xmpp.MessageOut, unstampPriority, m.unstamp)
	s.Hook(xmpp.MessageIn, Priority, m.received)
	s.Hook(xmpp.Undeliverable, 100, m.undeliverable)
	m.registerCluster(s)
	if m.MaxAge > 0 || m.MaxMessages > 0 {
		s.Go(m.prune)
	}
}

// unstampPriority runs after carbons: see sent.
const unstampPriority = -150

// Archivable tells whether a message is one XEP-0313 §5.1.1 has an
// account archive keep: one with a body, or a receipt, marker, correction
// or retraction; never an error, a groupchat message (the room archives
// those), a headline, a carbon, or one that asks not to be stored
// (XEP-0334). <store/> asks for a message that would not be kept otherwise.
// A room's private messages and mediated invitations have a body, and are
// kept as any other.
func Archivable(st *xmpp.Element) bool {
	switch st.Get("type") {
	case "error", "groupchat", "headline":
		return false
	}
	return worthKeeping(st)
}

// ArchivableInRoom tells whether a groupchat message is one a room's
// archive keeps: by Archivable's rules on its payloads, but never a
// subject change (XEP-0313 §5.1.1 archives messages, and XEP-0045 §8.1
// sends the subject to every newcomer anyway).
func ArchivableInRoom(st *xmpp.Element) bool {
	if st.Get("type") != "groupchat" {
		return false
	}
	if st.Child(xmpp.NSClient, "subject") != nil && st.Child(xmpp.NSClient, "body") == nil {
		return false
	}
	return worthKeeping(st)
}

// worthKeeping applies Archivable's rules to a message's payloads.
func worthKeeping(st *xmpp.Element) bool {
	keep, store := false, false
	for _, c := range st.Elements() {
		switch c.Space {
		case xmpp.NSClient:
			keep = keep || c.Local == "body"
		case NSHints:
			switch c.Local {
			case "no-store", "no-permanent-store":
				return false
			case "store":
				store = true
			}
		case nsCarbons:
			return false // a carbon is archived where its original was
		case NSReceipts:
			keep = keep || c.Local == "received"
		case NSMarkers, NSCorrect, NSRetract, NSFasten:
			keep = true
		}
	}
	return keep || store
}

// sent archives a message a local client sends in the sender's archive.
// The copy stamped with its stanza-id is st itself for the hooks between
// Priority and unstampPriority, which are Message Carbons': the sender's
// other clients learn the archive id of what it sent (XEP-0313 §5.1.2 has
// no way for the sender itself to). unstamp takes it off again before the
// message is routed, so the recipient never sees an id of the sender's
// archive.
func (m *Module) sent(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	st := ev.Stanza
	stripIDs(st, m.srv.Domain)
	if !Archivable(st) {
		return false
	}
	owner := ev.Session.JID().Bare()
	with := owner
	if t := st.Get("to"); t != "" {
		tj, err := jid.Parse(t)
		if err != nil {
			return false // the router answers <jid-malformed/>
		}
		with = tj.Bare()
	}
	if with.Equal(owner) {
		return false // to the account itself: archived once, as received
	}
	if !m.wanted(ctx, owner.String(), with.String()) {
		return false
	}
	id := m.archive(ctx, owner.String(), with.String(), st)
	st.Children = append(slices.Clip(st.Children), stanzaID(id, owner.String()))
	return false
}

// unstamp removes the stanza-id sent put on st (see sent).
func (m *Module) unstamp(_ context.Context, ev *xmpp.StanzaEvent) bool {
	st := ev.Stanza
	if n := len(st.Children); n > 0 {
		if el, ok := st.Children[n-1].(*xmpp.Element); ok && el.Space == NSSID && el.Local == "stanza-id" &&
			el.Get("by") == ev.Session.JID().Bare().String() {
			st.Children = st.Children[: n-1 : n-1]
		}
	}
	return false
}

// received archives a message to a local account in the account's archive
// and stamps its stanza-id on it (XEP-0313 §5.1.2), before it is delivered
// or stored offline: the copy a client gets, at once or at its next login,
// carries the id its archive has.
func (m *Module) received(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	st := ev.Stanza
	owner := ev.To.Bare().String()
	if ev.Origin == nil && m.isRerouted(st, owner) {
		return false // stamped and archived when it first came by
	}
	stripIDs(st, m.srv.Domain)
	if !Archivable(st) {
		return false
	}
	if ev.Origin == nil || !ev.Origin.JID().Bare().Equal(ev.To.Bare()) {
		// An account with a session exists; one without is looked up
		// (the router does, too, before it stores or bounces).
		if !m.srv.Router().Reachable(owner) && len(m.srv.SessionsOf(ev.To.Bare())) == 0 && !m.srv.AccountExists(ctx, owner) {
			return false
		}
	}
	var with string
	switch f := st.Get("from"); {
	case ev.Origin != nil:
		with = ev.Origin.JID().Bare().String() // no need to parse what the session stamped
	case f == "":
		with = owner
	default:
		fj, err := jid.Parse(f)
		if err != nil {
			return false
		}
		with = fj.Bare().String()
	}
	if !m.wanted(ctx, owner, with) {
		return false
	}
	id := m.archive(ctx, owner, with, st)
	st.Children = append(slices.Clip(st.Children), stanzaID(id, owner))
	return false
}

// undeliverable remembers the stanza-id of a message on its way to offline
// storage, which may route it again.
func (m *Module) undeliverable(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if sid := ownStanzaID(ev.Stanza, ev.To.Bare().String()); sid != nil {
		r := &m.rerouted
		r.mu.Lock()
		r.ring[r.next] = sid
		r.next = (r.next + 1) % len(r.ring)
		r.mu.Unlock()
	}
	return false
}

func (m *Module) isRerouted(st *xmpp.Element, owner string) bool {
	sid := ownStanzaID(st, owner)
	if sid == nil {
		return false
	}
	r := &m.rerouted
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.ring[:], sid)
}

// ownStanzaID returns st's stanza-id by owner, or nil.
func ownStanzaID(st *xmpp.Element, owner string) *xmpp.Element {
	for _, c := range st.Elements() {
		if c.Space == NSSID && c.Local == "stanza-id" && c.Get("by") == owner {
			return c
		}
	}
	return nil
}

// stripIDs removes the stanza-ids that claim to be by this server or one
// of its accounts (XEP-0359 §4): only the server puts those, after this.
// Others may hold st's old list of children, which is not changed.
func stripIDs(st *xmpp.Element, domain string) {
	spoofed := func(n xmpp.Node) bool {
		el, ok := n.(*xmpp.Element)
		if !ok || el.Space != NSSID || el.Local != "stanza-id" {
			return false
		}
		by, err := jid.Parse(el.Get("by"))
		return err != nil || by.Domainpart() == domain
	}
	if !slices.ContainsFunc(st.Children, spoofed) {
		return
	}
	st.Children = slices.DeleteFunc(slices.Clone(st.Children), spoofed)
}

// stanzaID makes <stanza-id xmlns='urn:xmpp:sid:0' by='by' id='id'/>.
func stanzaID(id, by string) *xmpp.Element {
	return xmpp.NewElement(NSSID, "stanza-id", "by", by, "id", id)
}

// archive stores st in owner's archive under a new id, which it returns.
func (m *Module) archive(ctx context.Context, owner, with string, st *xmpp.Element) string {
	now := time.Now()
	msg := storage.ArchivedMessage{
		ID:    m.IDs.Next(now),
		Owner: owner,
		With:  with,
		Time:  now.UTC().Truncate(time.Microsecond),
		Data:  st.Bytes(xmpp.NSClient),
	}
	if m.Sync {
		if err := m.Store.AppendArchive(ctx, msg); err != nil {
			m.log.Warn("archiving a message", "jid", owner, "err", err)
		}
	} else {
		m.w.add(ctx, msg)
	}
	return msg.ID
}

// wanted applies owner's preferences to a message with with.
func (m *Module) wanted(ctx context.Context, owner, with string) bool {
	p := m.prefsOf(ctx, owner)
	if _, ok := slices.BinarySearch(p.Never, with); ok {
		return false
	}
	if _, ok := slices.BinarySearch(p.Always, with); ok {
		return true
	}
	switch p.Default {
	case Always:
		return true
	case Roster:
		if m.Roster == nil {
			return false
		}
		in, err := m.Roster.InRoster(ctx, owner, with)
		if err != nil {
			m.log.Warn("roster lookup for archiving", "jid", owner, "err", err)
		}
		return in
	}
	return false
}

// Flush waits until what was archived before it is in the store.
func (m *Module) Flush(ctx context.Context) error { return m.w.flush(ctx) }

// DeleteAccount removes an account's archive, after what is on its way
// there.
func (m *Module) DeleteAccount(ctx context.Context, bare string) error {
	if err := m.w.flush(ctx); err != nil {
		return err
	}
	m.prefs.forget(bare)
	return m.Store.DeleteArchive(ctx, bare)
}

// prune removes what the retention settings no longer keep, at once and
// then every PruneInterval, until ctx ends.
func (m *Module) prune(ctx context.Context) {
	t := time.NewTicker(m.PruneInterval)
	defer t.Stop()
	for {
		m.PruneOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PruneOnce applies the retention settings now and returns how many
// messages it removed.
func (m *Module) PruneOnce(ctx context.Context) int64 {
	var before time.Time
	if m.MaxAge > 0 {
		before = time.Now().Add(-m.MaxAge)
	}
	n, err := m.Store.PruneArchive(ctx, before, m.MaxMessages)
	if err != nil && !errors.Is(err, context.Canceled) {
		m.log.Warn("pruning archives", "err", err)
	}
	if n > 0 {
		m.log.Info("pruned archives", "messages", n)
	}
	return n
}

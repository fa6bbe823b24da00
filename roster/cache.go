package roster

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/xmppd/xmppd/storage"
)

// While an account has sessions here, its roster is kept in memory: the
// stored items as storage has them, the co-members of its teams and
// projects (account.shared), and the roster's version. A presence
// broadcast, a probe, a roster get and a push read no storage. The module
// writes every stored item itself, and drops the cached items and version
// after each write (invalidate); a change of co-members, which the group
// watch reports, drops the version. Each drop bumps a generation, so that
// a read that began before a change cannot put what it read back
// afterwards.
//
// On a cluster, a roster item written by another node is not seen here by
// itself: that node says so over the bus (roster-changed, roster-push),
// and this one drops its copy (cluster.go).

// account returns the account's entry while it has sessions here, or nil.
func (m *Module) account(owner string) *account {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.accounts[owner]
}

// stored returns owner's stored items by contact: the account's cached
// ones when it is online here, else read from storage. The map must not be
// changed.
func (m *Module) stored(ctx context.Context, owner string) (map[string]storage.RosterItem, error) {
	var gen uint64
	a := m.account(owner)
	if a != nil {
		a.mu.Lock()
		items, g := a.items, a.gen
		a.mu.Unlock()
		if items != nil {
			return items, nil
		}
		gen = g
	}
	list, err := m.Store.Roster(ctx, owner)
	if err != nil {
		return nil, err
	}
	items := make(map[string]storage.RosterItem, len(list))
	for _, it := range list {
		items[it.Contact] = it
	}
	if a != nil {
		a.mu.Lock()
		if a.gen == gen {
			a.items = items
		}
		a.mu.Unlock()
	}
	return items, nil
}

// invalidate drops what is cached of owner's roster; the module calls it
// after each write of owner's stored items.
func (m *Module) invalidate(owner string) {
	if a := m.account(owner); a != nil {
		a.mu.Lock()
		a.gen++
		a.items, a.version = nil, ""
		a.mu.Unlock()
	}
}

// lookup returns owner's item for contact; a missing item is the zero item
// with subscription none.
func (m *Module) lookup(ctx context.Context, owner, contact string) (item, error) {
	it := item{RosterItem: storage.RosterItem{Contact: contact, Subscription: storage.SubNone}}
	if m.account(owner) == nil {
		// Not online here: one item, not the whole roster.
		stored, err := m.Store.RosterItem(ctx, owner, contact)
		switch {
		case err == nil:
			it.RosterItem, it.stored = stored, true
		case !errors.Is(err, storage.ErrNotFound):
			return it, err
		}
		it.shared = m.sharedWith(ctx, owner, contact)
		return it, nil
	}
	items, err := m.stored(ctx, owner)
	if err != nil {
		return it, err
	}
	if s, ok := items[contact]; ok {
		it.RosterItem, it.stored = s, true
	}
	it.shared = m.sharedWith(ctx, owner, contact)
	return it, nil
}

// roster returns owner's visible items sorted by contact, built from the
// cached stored items and co-members while owner is online here. They are
// built on each call, not kept: in a team of n, every account's roster
// holds the n-1 others, and keeping each as items and elements cost half a
// kilobyte per item and account (n² in all; 650 KiB per session in a team
// of 1,000).
func (m *Module) roster(ctx context.Context, owner string) ([]item, error) {
	items, _, err := m.rosterGen(ctx, owner)
	return items, err
}

// rosterGen is roster, and the account's generation the items were built
// at (0 when owner is not online here).
func (m *Module) rosterGen(ctx context.Context, owner string) ([]item, uint64, error) {
	var items []item
	gen, err := m.visit(ctx, owner, func(it item) { items = append(items, it) })
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.Contact, b.Contact) })
	return items, gen, err
}

// presenceContacts returns the contacts that get owner's presence (from)
// and those whose presence owner gets (to), in no order: what a presence
// broadcast needs of the roster, without building and sorting its items.
func (m *Module) presenceContacts(ctx context.Context, owner string) (from, to []string, err error) {
	_, err = m.visit(ctx, owner, func(it item) {
		if it.Contact == owner {
			return
		}
		if it.hasFrom() {
			from = append(from, it.Contact)
		}
		if it.hasTo() {
			to = append(to, it.Contact)
		}
	})
	return from, to, err
}

// visit calls fn with each of owner's visible items, in no order, built
// from the cached stored items and co-members while owner is online here,
// and returns the account's generation they were read at (0 when owner is
// not online here).
func (m *Module) visit(ctx context.Context, owner string, fn func(item)) (uint64, error) {
	a := m.account(owner)
	gen := uint64(0)
	if a != nil {
		a.mu.Lock()
		gen = a.gen
		a.mu.Unlock()
	}
	stored, err := m.stored(ctx, owner)
	if err != nil {
		return 0, err
	}
	if a != nil {
		m.cos.mu.RLock()
		if a.co != nil {
			// Read under the lock: the group watch changes the sets in
			// place.
			each(stored, a.co.all, owner, fn)
			m.cos.mu.RUnlock()
			return gen, nil
		}
		m.cos.mu.RUnlock() // the session is starting: its co-members are not loaded yet
	}
	each(stored, m.loadShared(ctx, owner), owner, fn)
	return gen, nil
}

// each calls fn with each stored item merged with the shared co-members
// (owner itself left out), hidden items left out.
func each(stored map[string]storage.RosterItem, shared map[string][]string, owner string, fn func(item)) {
	for c, s := range stored {
		it := item{RosterItem: s, stored: true}
		if c != owner {
			it.shared = shared[c]
		}
		if !it.hidden() {
			fn(it)
		}
	}
	for c, groups := range shared {
		if _, ok := stored[c]; !ok && c != owner {
			fn(item{RosterItem: storage.RosterItem{Contact: c, Subscription: storage.SubNone}, shared: groups})
		}
	}
}

// rosterVersion returns owner's roster version (RFC 6121 §2.6) and, when it
// had to serialise them to compute it, the items: the version is kept
// while owner is online here, and only it, until the roster changes.
func (m *Module) rosterVersion(ctx context.Context, owner string) (string, []byte, error) {
	if a := m.account(owner); a != nil {
		a.mu.Lock()
		v := a.version
		a.mu.Unlock()
		if v != "" {
			return v, nil, nil
		}
	}
	items, gen, err := m.rosterGen(ctx, owner)
	if err != nil {
		return "", nil, err
	}
	raw, v := rosterXML(items)
	if a := m.account(owner); a != nil {
		a.mu.Lock()
		if a.gen == gen {
			a.version = v
		}
		a.mu.Unlock()
	}
	return v, raw, nil
}

// PresenceContacts returns the contacts that get owner's presence (from)
// and those whose presence owner gets (to), bare JIDs as the roster holds
// them, in no order: who may see owner's personal eventing nodes, and whose
// nodes owner may see (XEP-0163 §4.1.1, access model "presence").
func (m *Module) PresenceContacts(ctx context.Context, owner string) (from, to []string, err error) {
	return m.presenceContacts(ctx, owner)
}

// Subscribed reports whether contact gets owner's presence: a subscription
// from or both, a co-member of a team or project included.
func (m *Module) Subscribed(ctx context.Context, owner, contact string) (bool, error) {
	if owner == contact {
		return true, nil
	}
	it, err := m.lookup(ctx, owner, contact)
	if err != nil {
		return false, err
	}
	return it.hasFrom(), nil
}

// InRoster reports whether contact is in owner's roster: a stored item, or
// a co-member of a team or project (the message archive's "roster"
// preference, XEP-0313 §6).
func (m *Module) InRoster(ctx context.Context, owner, contact string) (bool, error) {
	it, err := m.lookup(ctx, owner, contact)
	if err != nil {
		return false, err
	}
	return it.stored || len(it.shared) > 0, nil
}

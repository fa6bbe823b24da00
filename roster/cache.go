package roster

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// While an account has sessions here, its roster is kept in memory: the
// stored items as storage has them, and the view that clients see (the
// items merged with the co-members of its teams and projects, sorted, with
// their version and elements). A presence broadcast, a probe, a roster get
// and a push read no storage. The module writes every stored item itself,
// and drops the cached items after each write (invalidate); a change of
// co-members, which the group watch reports, drops the view
// (sharedChanged). Each drop bumps a generation, so that a read that began
// before a change cannot put what it read back afterwards.
//
// What this node does not see is not in the cache: with several nodes
// sharing one database, a roster item written by another node reaches this
// one only when the cluster bus says so (issue 20).

// view is an account's roster as its clients see it; read-only once built.
type view struct {
	items   []item      // visible items, sorted by contact
	version string      // RFC 6121 §2.6
	elems   []xmpp.Node // the items as <item/> elements, for a get
}

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
	a := m.account(owner)
	if a != nil {
		a.mu.Lock()
		if a.items != nil {
			items := a.items
			a.mu.Unlock()
			return items, nil
		}
		a.mu.Unlock()
	}
	gen := uint64(0)
	if a != nil {
		a.mu.Lock()
		gen = a.gen
		a.mu.Unlock()
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
		a.items, a.view = nil, nil
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

// roster returns owner's visible items sorted by contact. The slice must
// not be changed.
func (m *Module) roster(ctx context.Context, owner string) ([]item, error) {
	v, err := m.view(ctx, owner)
	if err != nil {
		return nil, err
	}
	return v.items, nil
}

// view returns owner's roster as its clients see it: cached while owner is
// online here, built afresh otherwise.
func (m *Module) view(ctx context.Context, owner string) (*view, error) {
	a := m.account(owner)
	gen := uint64(0)
	if a != nil {
		a.mu.Lock()
		v := a.view
		gen = a.gen
		a.mu.Unlock()
		if v != nil {
			return v, nil
		}
	}
	stored, err := m.stored(ctx, owner)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return buildView(stored, m.loadShared(ctx, owner)), nil
	}
	a.mu.Lock()
	if a.shared == nil {
		// Not loaded yet (the session is starting): not cached either.
		a.mu.Unlock()
		return buildView(stored, m.loadShared(ctx, owner)), nil
	}
	// Built under the lock: the group watch changes a.shared in place.
	v := buildView(stored, a.shared)
	if a.gen == gen {
		a.view = v
	}
	a.mu.Unlock()
	return v, nil
}

// buildView merges the stored items with the shared co-members.
func buildView(stored map[string]storage.RosterItem, shared map[string][]string) *view {
	items := make([]item, 0, len(stored)+len(shared))
	for c, s := range stored {
		it := item{RosterItem: s, stored: true, shared: shared[c]}
		if !it.hidden() {
			items = append(items, it)
		}
	}
	for c, groups := range shared {
		if _, ok := stored[c]; !ok {
			items = append(items, item{RosterItem: storage.RosterItem{Contact: c, Subscription: storage.SubNone}, shared: groups})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.Contact, b.Contact) })
	v := &view{items: items, elems: make([]xmpp.Node, len(items))}
	for i, it := range items {
		v.elems[i] = it.element()
	}
	v.version = version(v.elems)
	return v
}

package roster

import (
	"context"
	"errors"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// watchGroups keeps the shared-group part of online rosters current: for
// every change to a team or project, each online member affected gets roster
// pushes for the contacts that came, went or changed groups, and the
// presence of those that came or went.
func (m *Module) watchGroups(ctx context.Context) {
	m.Watching()
	ready := m.watching
	for attempt := 0; ; attempt++ {
		changes, err := m.Store.WatchGroups(ctx)
		if err == nil {
			if attempt == 0 {
				close(ready)
			}
			if attempt > 0 {
				// Whatever happened while the watch was down.
				m.resync(ctx, m.online())
			}
			for ch := range changes {
				m.applyChange(ctx, ch)
			}
		}
		if ctx.Err() != nil {
			if attempt == 0 && err != nil {
				close(ready)
			}
			return
		}
		m.warn(ctx, "watching groups", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// online returns the bare JIDs of the accounts with sessions here.
func (m *Module) online() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.accounts))
	for bare := range m.accounts {
		out = append(out, bare)
	}
	return out
}

func (m *Module) applyChange(ctx context.Context, ch storage.GroupChange) {
	if ch.Group == "" {
		m.resync(ctx, m.online())
		return
	}
	if ch.JID != "" {
		m.memberChanged(ctx, ch.Group, ch.JID)
		return
	}
	members, err := m.Store.Members(ctx, ch.Group)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		m.warn(ctx, "reading group members", "group", ch.Group, "err", err)
		m.resync(ctx, m.online())
		return
	}
	if errors.Is(err, storage.ErrNotFound) && ch.JID == "" {
		// A deleted group whose members we no longer know.
		m.resync(ctx, m.online())
		return
	}
	affected := members
	if ch.JID != "" && !slices.Contains(affected, ch.JID) {
		affected = append(affected, ch.JID)
	}
	m.resync(ctx, affected)
}

// resync brings the shared contacts of the given accounts, those online
// here, up to date with storage. An account whose groups storage cannot
// read keeps what it has: an empty answer from a database that is away
// would push the removal of every colleague (the next resync, when the
// watch is back, brings the changes).
func (m *Module) resync(ctx context.Context, accounts []string) {
	for _, owner := range accounts {
		a := m.account(owner)
		if a == nil {
			continue
		}
		fresh, err := m.readShared(ctx, owner)
		if err != nil {
			m.warn(ctx, "resynchronising shared groups; kept as they were", "jid", owner, "err", err)
			continue
		}
		m.replaceShared(ctx, a, owner, fresh)
	}
}

// replaceShared gives owner, online here, the co-members fresh and pushes
// the difference.
func (m *Module) replaceShared(ctx context.Context, a *account, owner string, fresh map[string][]string) {
	m.cos.mu.Lock()
	if a.co == nil {
		m.cos.mu.Unlock()
		return // its session is starting, and loads what is stored now
	}
	old := a.co.view(owner)
	m.cos.detach(a.co, owner)
	a.co = m.cos.attach(owner, fresh)
	m.cos.mu.Unlock()
	m.changed(a)
	m.diffShared(ctx, owner, old, fresh)
}

// changed drops a's cached version after its co-members changed.
func (m *Module) changed(a *account) {
	a.mu.Lock()
	a.gen++
	a.version = ""
	a.mu.Unlock()
}

// memberChanged handles one member j joining or leaving group: the
// groups j shares with each other account are read once (CoMembers of j,
// which are symmetric), and each set of co-members in use here that
// gained, lost or changed j is updated for that one contact, and its
// accounts get one push each: a change costs one query and work in
// proportion to the group, not a resync of every member (which read each
// member's co-members: the group's size squared).
func (m *Module) memberChanged(ctx context.Context, group, j string) {
	list, err := m.Store.CoMembers(ctx, j)
	if err != nil {
		m.warn(ctx, "reading co-members", "jid", j, "err", err)
		members, _ := m.Store.Members(ctx, group)
		m.resync(ctx, append(members, j))
		return
	}
	fresh := make(map[string][]string, len(list))
	for _, c := range list {
		fresh[c.JID] = c.Groups
	}
	var own *coSet
	if a := m.account(j); a != nil {
		m.replaceShared(ctx, a, j, fresh)
		m.cos.mu.RLock()
		own = a.co
		m.cos.mu.RUnlock()
	}
	type diff struct {
		owner    string
		had, has bool
	}
	var diffs []diff
	var split []string // owners whose view of j differs from their set's
	m.cos.mu.Lock()
	for _, set := range m.cos.sets() {
		if set == own {
			continue // j's own set, which has j as j has it
		}
		var owners []string
		for o := range set.owners {
			if o != j {
				owners = append(owners, o)
			}
		}
		if len(owners) == 0 {
			continue
		}
		now, has := fresh[owners[0]]
		was, had := set.all[j]
		var apart []string
		for _, o := range owners[1:] {
			if g, ok := fresh[o]; ok != has || !slices.Equal(g, now) {
				apart = append(apart, o) // not the same groups after all
			}
		}
		// Those leave the set before it changes, with its present
		// content, and are brought up to date on their own below.
		if len(apart) > 0 {
			fork := m.cos.fork(set, apart)
			for _, o := range apart {
				if a := m.account(o); a != nil && a.co == set {
					a.co = fork
				}
			}
		}
		split = append(split, apart...)
		if had == has && slices.Equal(was, now) {
			continue
		}
		if has {
			m.cos.set(set, j, now)
		} else {
			m.cos.set(set, j, nil)
		}
		for _, o := range owners {
			if !slices.Contains(split, o) {
				diffs = append(diffs, diff{o, had, has})
			}
		}
	}
	m.cos.mu.Unlock()
	for _, d := range diffs {
		if a := m.account(d.owner); a != nil {
			m.changed(a)
			m.diffOne(ctx, d.owner, j, d.had, d.has)
		}
	}
	m.resync(ctx, split)
}

// diffShared pushes what changed between two views of owner's co-members
// and exchanges presence with those that came and went.
func (m *Module) diffShared(ctx context.Context, owner string, old, fresh map[string][]string) {
	for c, groups := range fresh {
		was, ok := old[c]
		if ok && slices.Equal(was, groups) {
			continue
		}
		m.diffOne(ctx, owner, c, ok, true)
	}
	for c := range old {
		if _, ok := fresh[c]; !ok {
			m.diffOne(ctx, owner, c, true, false)
		}
	}
}

// diffOne pushes owner's item for c after the groups they share changed
// (had, has: whether they shared any before and after), and exchanges
// presence when c came or went.
func (m *Module) diffOne(ctx context.Context, owner, c string, had, has bool) {
	it, err := m.lookup(ctx, owner, c)
	if err != nil {
		m.warn(ctx, "reading roster", "jid", owner, "err", err)
		return
	}
	if has {
		m.push(ctx, owner, it)
		// Unless the stored item alone already gave owner c's presence.
		if stored := (item{RosterItem: it.RosterItem}); !had && !stored.hasTo() {
			// A new co-member: owner now sees c. The other direction is c's
			// own update, since c is a member of the same group.
			m.sendPresenceTo(ctx, c, owner, false)
		}
		return
	}
	if it.stored && !it.hidden() {
		m.push(ctx, owner, it)
	} else {
		m.push(ctx, owner, item{RosterItem: storage.RosterItem{Contact: c, Subscription: "remove"}})
	}
	if !it.hasTo() {
		// Owner no longer sees c. Every node's watch tells its own
		// sessions.
		ob, err := jid.Parse(owner)
		if err != nil {
			return
		}
		for _, r := range m.availableResources(ctx, c) {
			f, err := jid.Parse(c + "/" + r)
			if err == nil {
				m.deliverHere(ctx, ob, presence(f, owner, "unavailable"))
			}
		}
	}
}

func (m *Module) availableResources(ctx context.Context, bare string) []string {
	rs, err := m.srv.Registry().Resources(ctx, bare)
	if err != nil {
		m.warn(ctx, "presence registry", "jid", bare, "err", err)
	}
	var out []string
	for _, r := range rs {
		if r.Available {
			out = append(out, r.Resource)
		}
	}
	return out
}

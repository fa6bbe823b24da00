package mam

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Bounds of the preferences cache.
const (
	// prefsTTL is how long a cached preference is used. On several nodes
	// a change made on another node is told here at once (cluster.go);
	// one that the bus lost applies within it.
	prefsTTL = time.Minute
	// maxCachedPrefs bounds the cache; past it, it starts again empty.
	maxCachedPrefs = 100_000
)

// prefsCache keeps accounts' preferences, so that archiving a message does
// not read them from storage each time. A nil *ArchivePrefs caches "none
// set".
type prefsCache struct {
	mu      sync.Mutex
	entries map[string]cachedPrefs
}

type cachedPrefs struct {
	p       *storage.ArchivePrefs
	expires time.Time
}

func (c *prefsCache) init() { c.entries = make(map[string]cachedPrefs) }

func (c *prefsCache) get(owner string, now time.Time) (*storage.ArchivePrefs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[owner]
	if !ok || now.After(e.expires) {
		return nil, false
	}
	return e.p, true
}

func (c *prefsCache) put(owner string, p *storage.ArchivePrefs, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedPrefs {
		clear(c.entries)
	}
	c.entries[owner] = cachedPrefs{p, now.Add(prefsTTL)}
}

func (c *prefsCache) forget(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, owner)
}

// prefsOf returns owner's preferences, or the module's default.
func (m *Module) prefsOf(ctx context.Context, owner string) storage.ArchivePrefs {
	now := time.Now()
	p, ok := m.prefs.get(owner, now)
	if !ok {
		stored, err := m.Store.ArchivePrefs(ctx, owner)
		switch {
		case err == nil:
			p = &stored
		case errors.Is(err, storage.ErrNotFound):
		default:
			// Not cached: asked again at the next message.
			m.log.Warn("reading archive preferences", "jid", owner, "err", err)
			return storage.ArchivePrefs{Default: m.Default}
		}
		m.prefs.put(owner, p, now)
	}
	if p == nil {
		return storage.ArchivePrefs{Default: m.Default}
	}
	return *p
}

// own checks that an IQ to an account's archive comes from the account
// itself (XEP-0313 §4: a user's archive is queried by the user).
func own(iq *xmpp.IQ) error {
	if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
		return xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "an archive is queried by its own account"}
	}
	return nil
}

// getPrefs answers <prefs/> (XEP-0313 §6.1).
func (m *Module) getPrefs(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	return prefsElement(m.prefsOf(ctx, iq.To.Bare().String())), nil
}

// setPrefs replaces the preferences and answers with them as they are now
// (XEP-0313 §6.1).
func (m *Module) setPrefs(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	if err := own(iq); err != nil {
		return nil, err
	}
	p := storage.ArchivePrefs{Default: iq.Payload.Get("default")}
	switch p.Default {
	case Always, Never, Roster:
	default:
		return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "default is always, never or roster"}
	}
	list := func(name string) ([]string, error) {
		var out []string
		if el := iq.Payload.Child(NS, name); el != nil {
			for _, j := range el.Elements() {
				if j.Space != NS || j.Local != "jid" {
					continue
				}
				pj, err := jid.Parse(j.Text())
				if err != nil {
					return nil, xmpp.StanzaError{Condition: xmpp.JIDMalformed}
				}
				out = append(out, pj.Bare().String())
			}
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	}
	var err error
	if p.Always, err = list("always"); err != nil {
		return nil, err
	}
	if p.Never, err = list("never"); err != nil {
		return nil, err
	}
	for _, j := range p.Never {
		if _, ok := slices.BinarySearch(p.Always, j); ok {
			return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: j + " is both always and never"}
		}
	}
	owner := iq.To.Bare().String()
	if err := m.Store.SetArchivePrefs(ctx, owner, p); err != nil {
		return nil, err
	}
	m.prefs.put(owner, &p, time.Now())
	m.prefsChanged(ctx, owner)
	return prefsElement(p), nil
}

func prefsElement(p storage.ArchivePrefs) *xmpp.Element {
	el := xmpp.NewElement(NS, "prefs", "default", p.Default)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := xmpp.NewElement(NS, l.name)
		for _, j := range l.jids {
			list.Add(xmpp.NewElement(NS, "jid").Add(xmpp.Text(j)))
		}
		el.Add(list)
	}
	return el
}

package pep

import (
	"context"
	"errors"
	"slices"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Bookmarks are kept in three places, for three generations of clients:
// XEP-0402's node (an item per room), XEP-0048's element in private XML
// storage (XEP-0049), and XEP-0048's element as the one item of a personal
// node (XEP-0223). A change to any is made to the others (XEP-0402 §5.3),
// which the account's disco#info announces with the #compat and
// #compat-pep features.
const (
	// NSBookmarks is XEP-0402's node and namespace.
	NSBookmarks = "urn:xmpp:bookmarks:1"
	// NSLegacyBookmarks is XEP-0048's namespace, and the node of its
	// personal eventing form.
	NSLegacyBookmarks = "storage:bookmarks"
	// legacyKey is the private storage key of XEP-0048's element.
	legacyKey = "{" + NSLegacyBookmarks + "}storage"
	// legacyItem is the id of the one item of XEP-0048's node
	// (XEP-0048 §3.1).
	legacyItem = "current"
)

// bookmarksConfig is the configuration of a bookmarks node the server
// creates (XEP-0402 §3, XEP-0223 §4): private, kept, every item.
func bookmarksConfig() nodeConfig {
	c := defaults()
	c.access, c.maxItems, c.sendLast = AccessWhitelist, 0, sendNever
	return c
}

// syncingKey marks a context in which the server itself writes bookmarks,
// whose changes must not be converted back.
type syncingKey struct{}

func syncing(ctx context.Context) bool { return ctx.Value(syncingKey{}) != nil }

// bookmarksChanged is called after owner's node name changed: a bookmarks
// node's change goes to the other forms.
func (m *Module) bookmarksChanged(ctx context.Context, owner, name string, legacy *xmpp.Element) {
	if m.Docs == nil || syncing(ctx) {
		return
	}
	ctx = context.WithValue(ctx, syncingKey{}, true)
	var err error
	switch name {
	case NSBookmarks:
		err = m.writeLegacy(ctx, owner, true, true)
	case NSLegacyBookmarks:
		if legacy != nil {
			err = m.fromLegacy(ctx, owner, legacy, true, false)
		}
	}
	if err != nil {
		m.srv.Log().Warn("pep: converting bookmarks", "jid", owner, "node", name, "err", err)
	}
}

// PrivateChanged is private.Module's Changed: XEP-0048 bookmarks stored
// in private XML storage go to the personal eventing forms.
func (m *Module) PrivateChanged(ctx context.Context, owner string, el *xmpp.Element) {
	if m.Docs == nil || el.Space != NSLegacyBookmarks || el.Local != "storage" || syncing(ctx) {
		return
	}
	ctx = context.WithValue(ctx, syncingKey{}, true)
	if err := m.fromLegacy(ctx, owner, el, false, true); err != nil {
		m.srv.Log().Warn("pep: converting bookmarks", "jid", owner, "err", err)
	}
}

// writeLegacy builds XEP-0048's element from XEP-0402's items (XEP-0402
// §5.3.1) and stores it in private storage (toPrivate) and as the item of
// XEP-0048's node (toNode), which is created when missing: the account
// announces #compat-pep, so a client of that kind finds the list there.
func (m *Module) writeLegacy(ctx context.Context, owner string, toPrivate, toNode bool) error {
	its, err := m.Store.PEPItems(ctx, owner, NSBookmarks, nil, 0)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	st := xmpp.NewElement(NSLegacyBookmarks, "storage")
	for _, it := range slices.Backward(its) {
		c, err := xmpp.ParseElement(it.Payload)
		if err != nil || c.Space != NSBookmarks || c.Local != "conference" {
			continue
		}
		st.Add(legacyConference(it.ID, c))
	}
	data := st.Bytes("")
	if toPrivate {
		if err := m.Docs.PutXMLDoc(ctx, owner, legacyKey, data, storage.XMLDocLimits{}); err != nil {
			return err
		}
	}
	if toNode {
		if err := m.ensureNode(ctx, owner, NSLegacyBookmarks, bookmarksConfig()); err != nil {
			return err
		}
		if _, err := m.Publish(ctx, owner, owner, NSLegacyBookmarks, legacyItem, data, nil); err != nil {
			return err
		}
	}
	return nil
}

// legacyConference is XEP-0402's conference c of room jid as XEP-0048's.
func legacyConference(jid string, c *xmpp.Element) *xmpp.Element {
	out := xmpp.NewElement(NSLegacyBookmarks, "conference", "jid", jid)
	out.Set("name", c.Get("name"))
	if v := c.Get("autojoin"); v == "true" || v == "1" {
		out.Set("autojoin", "true")
	}
	for _, k := range []string{"nick", "password"} {
		if e := c.Child(NSBookmarks, k); e != nil {
			out.Add(xmpp.NewElement(NSLegacyBookmarks, k).Add(xmpp.Text(e.Text())))
		}
	}
	return out
}

// nativeConference is XEP-0048's conference c as XEP-0402's payload, and
// its room.
func nativeConference(c *xmpp.Element) (string, *xmpp.Element) {
	out := xmpp.NewElement(NSBookmarks, "conference")
	out.Set("name", c.Get("name"))
	if v := c.Get("autojoin"); v == "true" || v == "1" {
		out.Set("autojoin", "true")
	}
	for _, k := range []string{"nick", "password"} {
		if e := c.Child(NSLegacyBookmarks, k); e != nil {
			out.Add(xmpp.NewElement(NSBookmarks, k).Add(xmpp.Text(e.Text())))
		}
	}
	return c.Get("jid"), out
}

// sameConference reports whether two XEP-0402 conferences say the same of
// what XEP-0048 can say (name, autojoin, nick, password): an item XEP-0048
// did not change keeps its extensions.
func sameConference(a, b *xmpp.Element) bool {
	la, lb := legacyConference("", a), legacyConference("", b)
	return string(la.Bytes("")) == string(lb.Bytes(""))
}

// fromLegacy makes XEP-0402's node say what XEP-0048's element st says
// (XEP-0402 §5.3.2): new and changed rooms published, rooms gone
// retracted, unchanged ones left alone; then the other XEP-0048 form is
// written (private storage when st came from the node, the node when it
// came from private storage).
func (m *Module) fromLegacy(ctx context.Context, owner string, st *xmpp.Element, toPrivate, toNode bool) error {
	want := map[string]*xmpp.Element{}
	var order []string
	for _, c := range st.Elements() {
		if c.Space != NSLegacyBookmarks || c.Local != "conference" || c.Get("jid") == "" {
			continue
		}
		room, native := nativeConference(c)
		if _, dup := want[room]; !dup {
			order = append(order, room)
		}
		want[room] = native
	}
	if err := m.ensureNode(ctx, owner, NSBookmarks, bookmarksConfig()); err != nil {
		return err
	}
	its, err := m.Store.PEPItems(ctx, owner, NSBookmarks, nil, 0)
	if err != nil {
		return err
	}
	have := map[string]*xmpp.Element{}
	for _, it := range its {
		if c, err := xmpp.ParseElement(it.Payload); err == nil {
			have[it.ID] = c
		}
	}
	for _, room := range order {
		if old := have[room]; old != nil && sameConference(old, want[room]) {
			continue
		}
		if _, err := m.Publish(ctx, owner, owner, NSBookmarks, room, want[room].Bytes(""), nil); err != nil {
			return err
		}
	}
	var gone []string
	for _, it := range its {
		if want[it.ID] == nil {
			gone = append(gone, it.ID)
		}
	}
	if len(gone) > 0 {
		if err := m.Retract(ctx, owner, NSBookmarks, gone, true); err != nil {
			return err
		}
	}
	return m.writeLegacy(ctx, owner, toPrivate, toNode)
}

// ensureNode creates owner's node name with cfg when it is missing.
func (m *Module) ensureNode(ctx context.Context, owner, name string, cfg nodeConfig) error {
	svc, err := m.service(ctx, owner)
	if err != nil {
		return err
	}
	defer svc.mu.Unlock()
	if svc.nodes[name] != nil {
		return nil
	}
	_, err = m.createLocked(ctx, svc, owner, name, cfg)
	return err
}

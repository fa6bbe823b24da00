package pep

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Namespaces of XEP-0060.
const (
	NS       = "http://jabber.org/protocol/pubsub"
	NSOwner  = NS + "#owner"
	NSEvent  = NS + "#event"
	NSErrors = NS + "#errors"
	nsDelay  = "urn:xmpp:delay"
)

// Defaults of the Module's limits.
const (
	// DefaultMaxNodes bounds one account's nodes: a client keeps a
	// handful, and OMEMO one per device (XEP-0384 bundles).
	DefaultMaxNodes = 200
	// DefaultMaxItems is "max" items of a node (XEP-0402 keeps a
	// bookmark per room in one node).
	DefaultMaxItems = 256
	// DefaultMaxItemBytes bounds one item's payload: avatar images
	// (XEP-0084) are the largest clients publish.
	DefaultMaxItemBytes = 128 << 10
)

// Contacts is what the module needs of the roster: who gets an account's
// presence, and whose presence it gets (the "presence" access model,
// XEP-0060 §4.5).
type Contacts interface {
	PresenceContacts(ctx context.Context, owner string) (from, to []string, err error)
	Subscribed(ctx context.Context, owner, contact string) (bool, error)
}

// Module is the personal eventing service of every local account.
type Module struct {
	// Store keeps nodes and items.
	Store storage.PEP
	// Roster tells who may see a node of the presence access model, and
	// whose last items a client coming online is sent.
	Roster Contacts
	// MaxNodes, MaxItems and MaxItemBytes bound each account's nodes,
	// each node's items ("max" is MaxItems) and each item's payload; zero
	// selects the defaults above, a negative value means no limit.
	MaxNodes, MaxItems, MaxItemBytes int
	// Docs, when set, is the private XML storage (XEP-0049) where
	// XEP-0048 keeps bookmarks: the module keeps them in step with
	// XEP-0402's (bookmarks.go).
	Docs storage.XMLDocs
	// Avatars, when set with Docs, keeps XEP-0084 avatars and the vCard's
	// photo in step (XEP-0398, avatar.go): the vCard module, told of a
	// new hash.
	Avatars AvatarHashes

	srv      *xmpp.Server
	cache    services
	caps     capsCache
	sessions sync.Map // *xmpp.Session → *watcher
	remote   remotes
	// events are other nodes' notifications waiting (cluster.go).
	events func(remoteEvent) bool
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	if m.MaxNodes == 0 {
		m.MaxNodes = DefaultMaxNodes
	}
	if m.MaxItems == 0 {
		m.MaxItems = DefaultMaxItems
	}
	if m.MaxItemBytes == 0 {
		m.MaxItemBytes = DefaultMaxItemBytes
	}
	s.AddIdentity(xmpp.ToAccount, xmpp.Identity{Category: "pubsub", Type: "pep"})
	s.AddFeature(xmpp.ToAccount, NS)
	for _, f := range features {
		s.AddFeature(xmpp.ToAccount, NS+"#"+f)
	}
	s.HandleIQ(xmpp.ToAccount, "set", NS, "pubsub", m.set)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "pubsub", m.get)
	s.HandleIQ(xmpp.ToAccount, "set", NSOwner, "pubsub", m.ownerSet)
	s.HandleIQ(xmpp.ToAccount, "get", NSOwner, "pubsub", m.ownerGet)
	if m.Docs != nil {
		s.AddFeature(xmpp.ToAccount, NSBookmarks+"#compat")
		s.AddFeature(xmpp.ToAccount, NSBookmarks+"#compat-pep")
		s.AddFeature(xmpp.ToAccount, NSAvatarConversion)
	}
	s.AddItems(xmpp.ToAccount, m.discoItems)
	s.AddNodeSource(xmpp.ToAccount, m.discoNode)
	m.hookPresence(s)
	m.registerCluster(s)
}

// features are the XEP-0060 features implemented (§10), announced as
// NS#feature.
var features = []string{
	"access-open", "access-presence", "access-whitelist", "auto-create",
	"auto-subscribe", "config-node", "create-and-configure", "create-nodes",
	"delete-items", "delete-nodes", "filtered-notifications", "item-ids",
	"last-published", "modify-affiliations", "persistent-items",
	"presence-notifications", "publish", "publish-options", "purge-nodes",
	"retract-items", "retrieve-affiliations", "retrieve-default",
	"retrieve-items",
}

// pubsubError is a stanza error with XEP-0060's application condition app
// (§7, §8: precondition-not-met, nodeid-required, ...), none when "".
func pubsubError(cond xmpp.Condition, app, text string) error {
	e := xmpp.StanzaError{Condition: cond, Text: text}
	if app != "" {
		e.App = xmpp.NewElement(NSErrors, app)
	}
	return e
}

// unsupported is the error for a feature this service lacks (§7.1.3.1).
func unsupported(feature string) error {
	app := xmpp.NewElement(NSErrors, "unsupported", "feature", feature)
	return xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented, App: app}
}

var errNoNode = pubsubError(xmpp.ItemNotFound, "", "no such node")

// request is a pubsub request's parties: the account whose service it
// addresses, and who asks.
type request struct {
	owner     string
	requester jid.JID
	isOwner   bool
}

func parties(iq *xmpp.IQ) request {
	owner := iq.To.Bare()
	return request{owner: owner.String(), requester: iq.From, isOwner: iq.From.Bare().Equal(owner)}
}

// only is the one child of ps in space; an error when there is not exactly
// one (a pubsub request does one thing).
func only(ps *xmpp.Element, space string) (*xmpp.Element, error) {
	var op *xmpp.Element
	for _, c := range ps.Elements() {
		if c.Space != space {
			continue
		}
		// <configure/> and <publish-options/> go with <create/> and
		// <publish/> (§8.1.3, §7.1.5); an owner's <configure/> is a
		// request of its own.
		if space == NS && (c.Local == "configure" || c.Local == "publish-options") {
			continue
		}
		if op != nil {
			return nil, pubsubError(xmpp.BadRequest, "", "a pubsub request does one thing")
		}
		op = c
	}
	if op == nil {
		return nil, pubsubError(xmpp.BadRequest, "", "a pubsub request names what to do")
	}
	return op, nil
}

// nodeName is the node the operation names; nodeid-required when none.
func nodeName(op *xmpp.Element) (string, error) {
	n := op.Get("node")
	if n == "" {
		return "", pubsubError(xmpp.BadRequest, "nodeid-required", "")
	}
	return n, nil
}

func (m *Module) set(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	r := parties(iq)
	op, err := only(iq.Payload, NS)
	if err != nil {
		return nil, err
	}
	switch op.Local {
	case "publish", "retract", "create":
	case "subscribe", "unsubscribe":
		// Interest comes from entity capabilities (XEP-0163 §4.4).
		return nil, unsupported("subscribe")
	case "options":
		return nil, unsupported("subscription-options")
	default:
		return nil, pubsubError(xmpp.BadRequest, "", "unknown pubsub request "+op.Local)
	}
	if !r.isOwner {
		// The owner alone publishes to a personal node (XEP-0163 §4.3).
		return nil, pubsubError(xmpp.Forbidden, "", "only the account publishes to its nodes")
	}
	name, err := nodeName(op)
	if err != nil {
		return nil, err
	}
	switch op.Local {
	case "publish":
		return m.publishRequest(ctx, r, iq.Payload, op, name)
	case "retract":
		return nil, m.retractRequest(ctx, r, op, name)
	default:
		return nil, m.create(ctx, r, iq.Payload, name)
	}
}

func (m *Module) get(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	r := parties(iq)
	op, err := only(iq.Payload, NS)
	if err != nil {
		return nil, err
	}
	switch op.Local {
	case "items":
		return m.items(ctx, r, op)
	case "affiliations":
		return m.ownAffiliations(ctx, r)
	case "subscriptions":
		// Nobody subscribes explicitly; interest is from capabilities.
		return xmpp.NewElement(NS, "pubsub").Add(xmpp.NewElement(NS, "subscriptions")), nil
	case "default":
		return m.defaultConfig(NS), nil
	default:
		return nil, pubsubError(xmpp.BadRequest, "", "unknown pubsub request "+op.Local)
	}
}

// payloadOf returns the one <item/> of a publish and its payload.
func payloadOf(op *xmpp.Element, maxBytes int) (id string, payload []byte, err error) {
	var item *xmpp.Element
	for _, c := range op.Elements() {
		if c.Space == NS && c.Local == "item" {
			if item != nil {
				return "", nil, pubsubError(xmpp.BadRequest, "invalid-payload", "publish one item at a time")
			}
			item = c
		}
	}
	if item == nil {
		return "", nil, pubsubError(xmpp.BadRequest, "item-required", "")
	}
	els := item.Elements()
	switch len(els) {
	case 0:
		return "", nil, pubsubError(xmpp.BadRequest, "payload-required", "")
	case 1:
	default:
		return "", nil, pubsubError(xmpp.BadRequest, "invalid-payload", "an item holds one element")
	}
	payload = els[0].Bytes("")
	if maxBytes > 0 && len(payload) > maxBytes {
		return "", nil, pubsubError(xmpp.NotAcceptable, "payload-too-big",
			fmt.Sprintf("the payload is %d bytes, more than the %d allowed", len(payload), maxBytes))
	}
	return item.Get("id"), payload, nil
}

func (m *Module) publishRequest(ctx context.Context, r request, ps, op *xmpp.Element, name string) (*xmpp.Element, error) {
	id, payload, err := payloadOf(op, m.MaxItemBytes)
	if err != nil {
		return nil, err
	}
	var opts *form.Form
	if po := ps.Child(NS, "publish-options"); po != nil {
		if opts, err = form.Parse(po.Child(form.NS, "x")); err != nil || opts.FormType != FormPublishOptions {
			return nil, pubsubError(xmpp.BadRequest, "invalid-options", "publish-options holds a "+FormPublishOptions+" form")
		}
	}
	id, err = m.Publish(ctx, r.owner, r.requester.String(), name, id, payload, opts)
	if err != nil {
		return nil, err
	}
	return xmpp.NewElement(NS, "pubsub").Add(
		xmpp.NewElement(NS, "publish", "node", name).Add(xmpp.NewElement(NS, "item", "id", id))), nil
}

// newItemID makes an id for an item published without one (§7.1.1).
func newItemID() string { return rand.Text() }

// Publish stores an item in owner's node, creating the node (with opts, a
// publish-options form, when given) if it is missing, and notifies those
// with interest (XEP-0060 §7.1, XEP-0163 §4.3). With opts and an existing
// node, every option must match the node's configuration, or nothing is
// published (§7.1.5: precondition-not-met). An empty id is made up. It
// returns the item's id.
func (m *Module) Publish(ctx context.Context, owner, publisher, name, id string, payload []byte, opts *form.Form) (string, error) {
	if id == "" {
		id = newItemID()
	}
	svc, err := m.service(ctx, owner)
	if err != nil {
		return "", err
	}
	n := svc.nodes[name]
	if n == nil {
		cfg := defaults()
		if opts != nil {
			if err := cfg.apply(opts, m.MaxItems, false); err != nil {
				svc.mu.Unlock()
				return "", err
			}
		}
		if n, err = m.createLocked(ctx, svc, owner, name, cfg); err != nil {
			svc.mu.Unlock()
			return "", err
		}
	} else if opts != nil {
		for _, f := range opts.Fields {
			if !n.cfg.matches(f.Var, f.Value(), m.MaxItems) {
				svc.mu.Unlock()
				return "", pubsubError(xmpp.ConflictCond, "precondition-not-met",
					"the node's "+f.Var+" is not "+f.Value())
			}
		}
	}
	it := storage.PEPItem{ID: id, Publisher: publisher, Payload: payload}
	if n.cfg.persist {
		stored, err := m.Store.PublishPEPItem(ctx, owner, name, it, m.keep(n.cfg))
		if err != nil {
			svc.mu.Unlock()
			return "", err
		}
		n.setLast(stored)
		it = stored
	}
	snap := *n
	svc.mu.Unlock()
	var ev *xmpp.Element
	if n.cfg.notify {
		ev = itemsEvent(name, []storage.PEPItem{it}, snap.cfg.payloads)
	}
	m.changed(ctx, owner, &snap, ev)
	switch name {
	case NSAvatarMetadata:
		m.avatarPublished(ctx, owner, payload)
	case NSBookmarks:
		m.bookmarksChanged(ctx, owner, name, nil)
	case NSLegacyBookmarks:
		if st, err := xmpp.ParseElement(payload); err == nil && st.Space == NSLegacyBookmarks && st.Local == "storage" {
			m.bookmarksChanged(ctx, owner, name, st)
		}
	}
	return id, nil
}

// keep is how many items a node of cfg keeps.
func (m *Module) keep(cfg nodeConfig) int {
	if cfg.maxItems == 0 || (m.MaxItems > 0 && cfg.maxItems > m.MaxItems) {
		return m.MaxItems
	}
	return cfg.maxItems
}

// createLocked creates a node in svc (locked) and the store.
func (m *Module) createLocked(ctx context.Context, svc *service, owner, name string, cfg nodeConfig) (*node, error) {
	err := m.Store.CreatePEPNode(ctx, owner, storage.PEPNode{Name: name, Config: cfg.stored()}, m.MaxNodes)
	switch {
	case errors.Is(err, storage.ErrLimit):
		return nil, pubsubError(xmpp.NotAllowed, "max-nodes-exceeded",
			fmt.Sprintf("an account keeps at most %d nodes", m.MaxNodes))
	case errors.Is(err, storage.ErrExists):
		// Made by another process on the same store: read again.
		svc.loaded = false
		return nil, pubsubError(xmpp.ConflictCond, "", "the node was just created; try again")
	case err != nil:
		return nil, err
	}
	n := &node{name: name, cfg: cfg}
	svc.nodes[name] = n
	return n, nil
}

func (m *Module) create(ctx context.Context, r request, ps *xmpp.Element, name string) error {
	cfg := defaults()
	if c := ps.Child(NS, "configure"); c != nil {
		if x := c.Child(form.NS, "x"); x != nil {
			fm, err := form.Parse(x)
			if err != nil {
				return pubsubError(xmpp.BadRequest, "", err.Error())
			}
			if err := cfg.apply(fm, m.MaxItems, true); err != nil {
				return err
			}
		}
	}
	svc, err := m.service(ctx, r.owner)
	if err != nil {
		return err
	}
	if svc.nodes[name] != nil {
		svc.mu.Unlock()
		return pubsubError(xmpp.ConflictCond, "", "the node exists")
	}
	_, err = m.createLocked(ctx, svc, r.owner, name, cfg)
	svc.mu.Unlock()
	if err == nil {
		m.changed(ctx, r.owner, nil, nil)
	}
	return err
}

func (m *Module) retractRequest(ctx context.Context, r request, op *xmpp.Element, name string) error {
	var ids []string
	for _, c := range op.Elements() {
		if c.Space == NS && c.Local == "item" {
			if c.Get("id") == "" {
				return pubsubError(xmpp.BadRequest, "item-required", "")
			}
			ids = append(ids, c.Get("id"))
		}
	}
	if len(ids) == 0 {
		return pubsubError(xmpp.BadRequest, "item-required", "")
	}
	notify, _ := form.ParseBool(op.Get("notify"))
	return m.Retract(ctx, r.owner, name, ids, notify)
}

// Retract removes items from owner's node (XEP-0060 §7.2), telling those
// with interest when notify is set and the node notifies retractions.
func (m *Module) Retract(ctx context.Context, owner, name string, ids []string, notify bool) error {
	svc, n, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := m.Store.RetractPEPItem(ctx, owner, name, id); err != nil {
			svc.mu.Unlock()
			if errors.Is(err, storage.ErrNotFound) {
				return pubsubError(xmpp.ItemNotFound, "", "no item "+id)
			}
			return err
		}
	}
	if n.last != nil && slices.Contains(ids, n.last.ID) {
		n.last = nil
		if its, err := m.Store.PEPItems(ctx, owner, name, nil, 1); err == nil && len(its) > 0 {
			n.setLast(its[0])
		}
	}
	snap := *n
	svc.mu.Unlock()
	ev := xmpp.NewElement(NSEvent, "items", "node", name)
	for _, id := range ids {
		ev.Add(xmpp.NewElement(NSEvent, "retract", "id", id))
	}
	m.after(ctx, owner, &snap, ev, notify && snap.cfg.retract)
	return nil
}

// after follows a change to owner's node n (a snapshot): the event ev to
// those with interest when send is set (on every node), and a bookmarks
// node's change to the bookmarks' other forms.
func (m *Module) after(ctx context.Context, owner string, n *node, ev *xmpp.Element, send bool) {
	if !send {
		ev = nil
	}
	m.changed(ctx, owner, n, ev)
	if n.name == NSBookmarks {
		m.bookmarksChanged(ctx, owner, n.name, nil)
	}
}

// items answers a retrieval (XEP-0060 §6.5): all, the newest max_items,
// or those asked by id, oldest first.
func (m *Module) items(ctx context.Context, r request, op *xmpp.Element) (*xmpp.Element, error) {
	name, err := nodeName(op)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range op.Elements() {
		if c.Space == NS && c.Local == "item" && c.Get("id") != "" {
			ids = append(ids, c.Get("id"))
		}
	}
	max := 0
	if v := op.Get("max_items"); v != "" {
		if _, err := fmt.Sscan(v, &max); err != nil || max < 1 {
			return nil, pubsubError(xmpp.BadRequest, "", "max_items is a positive number")
		}
	}
	svc, err := m.service(ctx, r.owner)
	if err != nil {
		return nil, err
	}
	n := svc.nodes[name]
	var snap node
	if n != nil {
		snap = *n
	}
	svc.mu.Unlock()
	if n == nil {
		return nil, errNoNode
	}
	if err := m.mayRetrieve(ctx, r, &snap); err != nil {
		return nil, err
	}
	its, err := m.Store.PEPItems(ctx, r.owner, name, ids, max)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoNode
	}
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 && len(its) == 0 {
		return nil, pubsubError(xmpp.ItemNotFound, "", "no such item")
	}
	res := xmpp.NewElement(NS, "items", "node", name)
	for i := len(its) - 1; i >= 0; i-- {
		res.Add(itemElement(NS, its[i], true))
	}
	return xmpp.NewElement(NS, "pubsub").Add(res), nil
}

// mayRetrieve checks the access model for someone other than the owner
// (XEP-0060 §6.5.9).
func (m *Module) mayRetrieve(ctx context.Context, r request, n *node) error {
	if r.isOwner {
		return nil
	}
	bare := r.requester.Bare().String()
	switch aff := n.affs[bare]; {
	case aff == "outcast":
		return pubsubError(xmpp.Forbidden, "", "")
	case n.cfg.access == AccessOpen:
		return nil
	case n.cfg.access == AccessWhitelist:
		if aff == "member" || aff == "publisher" {
			return nil
		}
		return pubsubError(xmpp.NotAllowed, "closed-node", "")
	}
	if ok, err := m.subscribed(ctx, r.owner, bare); err != nil {
		return err
	} else if !ok {
		return pubsubError(xmpp.NotAuthorizedCond, "presence-subscription-required", "")
	}
	return nil
}

func (m *Module) subscribed(ctx context.Context, owner, contact string) (bool, error) {
	if m.Roster == nil {
		return false, nil
	}
	return m.Roster.Subscribed(ctx, owner, contact)
}

// itemElement is an <item/> in space (pubsub or pubsub#event), with its
// payload when payload is set.
func itemElement(space string, it storage.PEPItem, payload bool) *xmpp.Element {
	el := xmpp.NewElement(space, "item", "id", it.ID)
	if payload && len(it.Payload) > 0 {
		el.Add(xmpp.Raw(it.Payload))
	}
	return el
}

// itemsEvent is the <items/> of a notification of items (§7.1.2.1).
func itemsEvent(name string, its []storage.PEPItem, payload bool) *xmpp.Element {
	ev := xmpp.NewElement(NSEvent, "items", "node", name)
	for _, it := range its {
		ev.Add(itemElement(NSEvent, it, payload))
	}
	return ev
}

package roster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of this package.
const (
	NSRoster    = xmpp.NSRoster
	NSRosterVer = "urn:xmpp:features:rosterver"
	NSPreApprov = "urn:xmpp:features:pre-approval"
)

// Limits on what a client may put in a roster item (RFC 6121 §2.3.3 leaves
// the numbers to the server).
const (
	maxNameLen  = 1023
	maxGroupLen = 1023
	maxGroups   = 64
)

// DefaultMaxItems bounds a roster when Module.MaxItems is zero.
const DefaultMaxItems = 1000

// DefaultMaxDirected bounds the directed presences a session tracks when
// Module.MaxDirected is zero. Each room a client joins (XEP-0045) is one,
// as is each entity it shows itself to outside its roster. Prosody and
// ejabberd track them without a bound; ejabberd and MongooseIM let a user
// sit in 10 rooms of their MUC service by default (max_user_conferences).
// 100 leaves room for ten times that, at about 10 KiB a session with
// JIDs of a usual length and 300 KiB with the longest (3,071 bytes, RFC
// 7622 §3.1).
const DefaultMaxDirected = 100

// Store is what the module needs from storage.
type Store interface {
	storage.Rosters
	storage.Groups
}

// Module serves rosters and presence. Set its fields before the server
// starts.
type Module struct {
	Store Store
	// MaxItems bounds each roster; negative means no limit.
	MaxItems int
	// MaxDirected bounds the entities one session may send directed
	// presence to while available (RFC 6121 §4.6), each of which the server
	// must remember to send unavailable presence to later; negative means
	// no limit. Past it, directed available presence to a further entity is
	// refused (see OutboundPresence).
	MaxDirected int

	srv       *xmpp.Server
	log       *slog.Logger
	pushID    atomic.Uint64
	mu        sync.Mutex
	accounts  map[string]*account // online accounts by bare JID
	sessions  sync.Map            // *xmpp.Session → *sessionState
	cos       coSets
	watchOnce sync.Once
	watching  chan struct{} // closed once the group watch runs
	// maxItems is MaxItems, which SetMaxItems changes (limits.go).
	maxItems atomic.Int64
	// remotePushes are the pushes other nodes of a cluster asked for
	// (cluster.go).
	remotePushes func(remotePush) bool
}

// account is what the module keeps for an account while it has sessions.
type account struct {
	sessions int
	mu       sync.Mutex
	// co is the account's co-members, shared with the accounts of the same
	// groups (coset.go); guarded by Module.cos.mu, nil until loaded.
	co *coSet
	// The roster cache (cache.go): the stored items by contact and the
	// roster's version, empty until read; gen counts the changes that
	// dropped them.
	items   map[string]storage.RosterItem
	version string
	gen     uint64
	// presence holds the last broadcast presence of each available
	// resource here, serialised once, which answers probes without parsing
	// the registry's copy.
	presence map[string]xmpp.Fanout
}

// sessionState is per-session presence bookkeeping.
type sessionState struct {
	mu         sync.Mutex
	interested bool // requested the roster (RFC 6121 §2.1.6)
	// directed holds the JIDs that got directed available presence from
	// this session and no unavailable since (RFC 6121 §4.6).
	directed map[string]bool
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = slog.Default().With("module", "roster")
	m.accounts = make(map[string]*account)
	if m.MaxItems == 0 {
		m.MaxItems = DefaultMaxItems
	}
	m.maxItems.Store(int64(m.MaxItems))
	if m.MaxDirected == 0 {
		m.MaxDirected = DefaultMaxDirected
	}
	s.HandleIQ(xmpp.ToAccount, "get", NSRoster, "query", m.get)
	s.HandleIQ(xmpp.ToAccount, "set", NSRoster, "query", m.set)
	s.AddStreamFeature(xmpp.Informational(NSRosterVer, "ver"))
	s.AddStreamFeature(xmpp.Informational(NSPreApprov, "sub"))
	// The roster is the presence handler of RFC 6121: it takes presence
	// from local clients and to local accounts.
	s.Hook(xmpp.PresenceOut, 0, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		m.OutboundPresence(ctx, ev.Session, ev.Stanza, ev.WasAvailable)
		return true
	})
	s.Hook(xmpp.PresenceIn, 0, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		m.InboundPresence(ctx, ev.Stanza, ev.To, ev.Origin)
		return true
	})
	s.HookSession(xmpp.SessionBound, 0, m.sessionStarted)
	s.HookSession(xmpp.SessionEnded, 0, m.sessionEnded)
	s.HookSessionsGone(m.sessionsGone)
	s.HookTakenForGone(m.announceAgain)
	m.registerCluster(s)
	go m.watchGroups(s.Context())
}

// Watching is closed once changes to groups are being watched (or the
// server stopped before they could be).
func (m *Module) Watching() <-chan struct{} {
	m.watchOnce.Do(func() { m.watching = make(chan struct{}) })
	return m.watching
}

// lock takes the server's lock on owner's roster: read-modify-write of an
// item must not interleave, on this node or another.
func (m *Module) lock(ctx context.Context, owner string) (func(), error) {
	return m.srv.Lock(ctx, "roster:"+owner)
}

func (m *Module) state(s *xmpp.Session) *sessionState {
	v, ok := m.sessions.Load(s)
	if !ok {
		v, _ = m.sessions.LoadOrStore(s, &sessionState{})
	}
	return v.(*sessionState)
}

func (m *Module) sessionStarted(_ context.Context, s *xmpp.Session) {
	m.state(s)
	bare := s.JID().Bare().String()
	m.mu.Lock()
	a := m.accounts[bare]
	if a == nil {
		a = &account{}
		m.accounts[bare] = a
	}
	a.sessions++
	m.mu.Unlock()
	ctx := m.srv.Context()
	m.cos.mu.RLock()
	loaded := a.co != nil
	m.cos.mu.RUnlock()
	if !loaded {
		shared := m.loadShared(ctx, bare)
		m.cos.mu.Lock()
		if a.co == nil {
			a.co = m.cos.attach(bare, shared)
		}
		m.cos.mu.Unlock()
	}
	err := m.srv.Registry().SetResource(ctx, bare, storage.Resource{Resource: s.JID().Resourcepart(), Node: m.srv.Node()})
	if err != nil {
		m.warn(ctx, "presence registry", "jid", s.JID().String(), "err", err)
	}
}

func (m *Module) sessionEnded(_ context.Context, s *xmpp.Session) {
	ctx := m.srv.Context()
	st := m.state(s)
	if was, _ := s.Available(); was {
		// An abrupt end: the server says unavailable on the client's behalf
		// (RFC 6121 §4.5.2).
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", s.JID().String())
		m.broadcastUnavailable(ctx, s, st, p, true)
	}
	bare := s.JID().Bare().String()
	if err := m.srv.Registry().RemoveResource(ctx, bare, s.JID().Resourcepart()); err != nil {
		m.warn(ctx, "presence registry", "jid", s.JID().String(), "err", err)
	}
	m.sessions.Delete(s)
	m.mu.Lock()
	a := m.accounts[bare]
	gone := false
	if a != nil {
		a.sessions--
		if a.sessions <= 0 {
			delete(m.accounts, bare)
			gone = true
		}
	}
	m.mu.Unlock()
	if gone {
		m.cos.mu.Lock()
		if a.co != nil {
			m.cos.detach(a.co, bare)
			a.co = nil
		}
		m.cos.mu.Unlock()
	}
}

func (m *Module) loadShared(ctx context.Context, bare string) map[string][]string {
	shared, err := m.readShared(ctx, bare)
	if err != nil {
		m.warn(ctx, "loading shared groups", "jid", bare, "err", err)
	}
	return shared
}

// readShared is loadShared that says when storage failed (the map is then
// empty, and no statement about bare's groups).
func (m *Module) readShared(ctx context.Context, bare string) (map[string][]string, error) {
	list, err := m.Store.CoMembers(ctx, bare)
	shared := make(map[string][]string, len(list))
	for _, c := range list {
		shared[c.JID] = c.Groups
	}
	return shared, err
}

// sharedWith returns the names of the groups owner shares with contact:
// from the co-members of either while one is online here (sharing is
// symmetric; the group watch changes the sets in place, so they are read
// under cos.mu), from storage otherwise. The contact's side matters: a
// colleague online on another node is asked about for each member who
// signs in here, and reading all the colleague's co-members each time cost
// a team of n n² rows per sign-in (TestLargeTeamLoginWithSM took seconds).
func (m *Module) sharedWith(ctx context.Context, owner, contact string) []string {
	for _, pair := range [2][2]string{{owner, contact}, {contact, owner}} {
		if a := m.account(pair[0]); a != nil {
			m.cos.mu.RLock()
			if a.co != nil {
				groups := a.co.get(pair[0], pair[1])
				m.cos.mu.RUnlock()
				return groups
			}
			m.cos.mu.RUnlock()
		}
	}
	return m.loadShared(ctx, owner)[contact]
}

// An item is a roster item as the client sees it: the stored item merged
// with the shared groups.
type item struct {
	storage.RosterItem
	stored bool // there is a stored item
	shared []string
}

func (it item) subscription() string {
	if len(it.shared) > 0 {
		return storage.SubBoth
	}
	return it.Subscription
}

// hasFrom: the contact receives the owner's presence.
func (it item) hasFrom() bool {
	s := it.subscription()
	return s == storage.SubFrom || s == storage.SubBoth
}

// hasTo: the owner receives the contact's presence.
func (it item) hasTo() bool {
	s := it.subscription()
	return s == storage.SubTo || s == storage.SubBoth
}

// hidden is an item that exists only to remember a subscription request
// ("None + Pending In" with nothing the user set): RFC 6121 §3.1.3 keeps it
// out of the roster until the user acts on it.
func (it item) hidden() bool {
	return len(it.shared) == 0 && it.stored && it.Subscription == storage.SubNone && !it.Ask &&
		it.PendingIn && !it.Approved && it.Name == "" && len(it.Groups) == 0
}

func (it item) element() *xmpp.Element {
	e := xmpp.NewElement(NSRoster, "item", "jid", it.Contact)
	if it.Name != "" {
		e.Set("name", it.Name)
	}
	e.Set("subscription", it.subscription())
	if it.Ask && !it.hasTo() {
		e.Set("ask", "subscribe")
	}
	if it.Approved && !it.hasFrom() {
		e.Set("approved", "true")
	}
	groups := it.Groups
	if len(it.shared) > 0 {
		groups = union(it.Groups, it.shared)
	}
	for _, g := range groups {
		e.Add(xmpp.NewElement(NSRoster, "group").Add(xmpp.Text(g)))
	}
	return e
}

// appendXML appends the item as element().Append(b, NSRoster) would,
// without building the element: a team's roster is a thousand of these at
// every sign-in (TestItemXML keeps the two the same).
func (it item) appendXML(b []byte) []byte {
	b = append(b, `<item jid="`...)
	b = xmpp.AppendEscaped(b, it.Contact)
	if it.Name != "" {
		b = append(b, `" name="`...)
		b = xmpp.AppendEscaped(b, it.Name)
	}
	b = append(b, `" subscription="`...)
	b = append(b, it.subscription()...)
	b = append(b, '"')
	if it.Ask && !it.hasTo() {
		b = append(b, ` ask="subscribe"`...)
	}
	if it.Approved && !it.hasFrom() {
		b = append(b, ` approved="true"`...)
	}
	if len(it.Groups) == 0 && len(it.shared) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	add := func(g string) {
		b = append(b, "<group>"...)
		b = xmpp.AppendEscaped(b, g)
		b = append(b, "</group>"...)
	}
	// The union of two sorted, distinct lists, as union makes it.
	i, j := 0, 0
	for i < len(it.Groups) || j < len(it.shared) {
		switch {
		case j == len(it.shared) || i < len(it.Groups) && it.Groups[i] < it.shared[j]:
			add(it.Groups[i])
			i++
		case i == len(it.Groups) || it.shared[j] < it.Groups[i]:
			add(it.shared[j])
			j++
		default:
			add(it.Groups[i])
			i, j = i+1, j+1
		}
	}
	return append(b, "</item>"...)
}

func union(a, b []string) []string {
	out := append(append([]string(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// rosterXML is the items of a roster result, serialised, and version a
// digest of them, so that a client holding it can be told "unchanged"
// (RFC 6121 §2.6).
func rosterXML(items []item) (xml []byte, version string) {
	n := 0
	for _, it := range items {
		n += 64 + len(it.Contact) + len(it.Name)
	}
	xml = make([]byte, 0, n)
	for _, it := range items {
		xml = it.appendXML(xml)
	}
	sum := sha256.Sum256(xml)
	return xml, hex.EncodeToString(sum[:8])
}

// get answers a roster get (RFC 6121 §2.2), with an empty result when the
// client's version is current (§2.6.3).
func (m *Module) get(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner := iq.To.String()
	if !iq.From.Bare().Equal(iq.To) || iq.Session == nil {
		return nil, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "a roster belongs to its account alone"}
	}
	st := m.state(iq.Session)
	st.mu.Lock()
	st.interested = true
	st.mu.Unlock()
	ver, raw, err := m.rosterVersion(ctx, owner)
	if err != nil {
		return nil, err
	}
	if v := iq.Payload.Get("ver"); v != "" && v == ver {
		return nil, nil
	}
	if raw == nil {
		items, err := m.roster(ctx, owner)
		if err != nil {
			return nil, err
		}
		raw, _ = rosterXML(items)
	}
	q := xmpp.NewElement(NSRoster, "query", "ver", ver)
	if len(raw) > 0 {
		q.Children = []xmpp.Node{xmpp.Raw(raw)}
	}
	return q, nil
}

// set answers a roster set (RFC 6121 §2.3–§2.5).
func (m *Module) set(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	owner := iq.To.String()
	if !iq.From.Bare().Equal(iq.To) {
		return nil, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "a roster belongs to its account alone"}
	}
	kids := iq.Payload.Elements()
	if len(kids) != 1 || kids[0].Space != NSRoster || kids[0].Local != "item" {
		return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a roster set has exactly one item"}
	}
	el := kids[0]
	cj, err := jid.Parse(el.Get("jid"))
	if err != nil {
		return nil, xmpp.StanzaError{Condition: xmpp.JIDMalformed}
	}
	contact := cj.Bare().String()
	if el.Get("subscription") == "remove" {
		return nil, m.remove(ctx, owner, contact)
	}
	name := el.Get("name")
	if len(name) > maxNameLen || !utf8.ValidString(name) {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "the name is longer than " + strconv.Itoa(maxNameLen) + " bytes"}
	}
	var groups []string
	for _, g := range el.Elements() {
		if g.Space != NSRoster || g.Local != "group" {
			continue
		}
		name := g.Text()
		switch {
		case name == "" || len(name) > maxGroupLen:
			return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "a group name is empty or longer than " + strconv.Itoa(maxGroupLen) + " bytes"}
		case slices.Contains(groups, name):
			return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a group is named twice"}
		}
		groups = append(groups, name)
	}
	if len(groups) > maxGroups {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "an item may be in at most " + strconv.Itoa(maxGroups) + " groups"}
	}
	slices.Sort(groups)
	unlock, err := m.lock(ctx, owner)
	if err != nil {
		return nil, err
	}
	it, err := m.lookup(ctx, owner, contact)
	if err != nil {
		unlock()
		return nil, err
	}
	// The client sets only the name and groups; 'subscription' and 'ask'
	// from it are ignored (§2.1.2.5, §2.1.2.2).
	it.Name, it.Groups = name, groups
	err = m.save(ctx, owner, &it)
	unlock()
	if err != nil {
		return nil, err
	}
	m.pushAll(ctx, owner, it)
	return nil, nil
}

// save stores it, with the roster's item limit.
func (m *Module) save(ctx context.Context, owner string, it *item) error {
	max := int(m.maxItems.Load())
	err := m.Store.PutRosterItem(ctx, owner, it.RosterItem, max)
	if errors.Is(err, storage.ErrLimit) {
		return xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "the roster is full: it may hold at most " + strconv.Itoa(max) + " items"}
	}
	if err == nil {
		it.stored = true
		m.stale(ctx, owner)
	}
	return err
}

// remove deletes an item (RFC 6121 §2.5), cancelling the subscriptions in
// both directions first.
func (m *Module) remove(ctx context.Context, owner, contact string) error {
	unlock, err := m.lock(ctx, owner)
	if err != nil {
		return err
	}
	it, err := m.lookup(ctx, owner, contact)
	if err != nil {
		unlock()
		return err
	}
	if len(it.shared) > 0 {
		unlock()
		return xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "this contact shares your team or project (" + strings.Join(it.shared, ", ") + "); membership is managed by the app, not the roster"}
	}
	if !it.stored {
		unlock()
		return xmpp.StanzaError{Condition: xmpp.ItemNotFound}
	}
	err = m.Store.DeleteRosterItem(ctx, owner, contact)
	m.stale(ctx, owner)
	unlock()
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	userBare, _ := jid.Parse(owner)
	if it.Ask || it.hasTo() {
		m.route(ctx, presence(userBare, contact, "unsubscribe"))
	}
	if it.PendingIn || it.hasFrom() {
		m.route(ctx, presence(userBare, contact, "unsubscribed"))
	}
	if it.hasFrom() {
		m.sendUnavailableTo(ctx, owner, contact)
	}
	rm := item{RosterItem: storage.RosterItem{Contact: contact, Subscription: "remove"}}
	m.pushAll(ctx, owner, rm)
	return nil
}

// push sends a roster push of it to every interested resource of owner
// (RFC 6121 §2.1.6), with the roster's new version.
func (m *Module) push(ctx context.Context, owner string, it item) {
	if it.hidden() {
		return
	}
	m.pushItem(ctx, owner, itemElement(it))
}

// itemElement is it as a push carries it.
func itemElement(it item) *xmpp.Element {
	if it.Subscription == "remove" {
		return xmpp.NewElement(NSRoster, "item", "jid", it.Contact, "subscription", "remove")
	}
	return it.element()
}

// pushItem sends a roster push of the <item/> el to every interested
// resource of owner here, with the roster's version.
func (m *Module) pushItem(ctx context.Context, owner string, el *xmpp.Element) {
	ver, _, err := m.rosterVersion(ctx, owner)
	if err != nil {
		m.warn(ctx, "roster push", "jid", owner, "err", err)
		return
	}
	q := xmpp.NewElement(NSRoster, "query", "ver", ver).Add(el)
	ob, _ := jid.Parse(owner)
	m.srv.Router().DeliverEach(ctx, ob, func(s *xmpp.Session) *xmpp.Element {
		if !m.interested(s) {
			return nil
		}
		iq := xmpp.NewElement(xmpp.NSClient, "iq", "type", "set",
			"id", "push"+strconv.FormatUint(m.pushID.Add(1), 36), "to", s.JID().String())
		return iq.Add(q)
	})
}

// interested reports whether the session asked for the roster, and so gets
// roster pushes (RFC 6121 §2.1.6).
func (m *Module) interested(s *xmpp.Session) bool {
	v, ok := m.sessions.Load(s)
	if !ok {
		return false
	}
	st := v.(*sessionState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.interested
}

// warn logs a failure, unless it is only the server shutting down.
func (m *Module) warn(ctx context.Context, msg string, args ...any) {
	if ctx.Err() == nil {
		m.log.Warn(msg, args...)
	}
}

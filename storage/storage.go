// Package storage defines xmppd's durable state as one small interface per
// aggregate. Backends live below it (storage/sqlite, the embedded default, and
// storage/postgres); storage/storagetest is the conformance suite that every
// backend must pass.
package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Errors shared by every backend; callers test with errors.Is.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrExists   = errors.New("storage: already exists")
	// ErrLimit says a per-account quota (roster items, offline messages)
	// is full.
	ErrLimit = errors.New("storage: limit reached")
	// ErrTotalLimit says a server-wide quota (the bytes of every offline
	// queue together) is full. It is an ErrLimit too, so that a caller that
	// only asks whether a quota refused the write still finds out.
	ErrTotalLimit = fmt.Errorf("%w: server-wide", ErrLimit)
)

// SCRAMKeys are the RFC 5802 §3 keys derived for one hash function.
// The password and the SaltedPassword are never stored: StoredKey lets the
// server verify a proof, ServerKey lets it prove itself, and neither is enough
// to log in.
type SCRAMKeys struct {
	StoredKey []byte
	ServerKey []byte
}

// Credentials are what an account stores to authenticate with SCRAM-SHA-1 and
// SCRAM-SHA-256 (and PLAIN, by deriving the same keys from the password).
type Credentials struct {
	Salt       []byte
	Iterations int
	SHA1       SCRAMKeys
	SHA256     SCRAMKeys
}

// Users stores accounts by bare JID ("alice@example.com", already normalised
// by the caller).
type Users interface {
	// CreateUser adds an account; ErrExists if it is there already.
	CreateUser(ctx context.Context, jid string, c Credentials) error
	// SetCredentials replaces an account's credentials; ErrNotFound if absent.
	SetCredentials(ctx context.Context, jid string, c Credentials) error
	// Credentials returns an account's credentials; ErrNotFound if absent.
	Credentials(ctx context.Context, jid string) (Credentials, error)
	// DeleteUser removes an account and everything it owns; ErrNotFound if absent.
	DeleteUser(ctx context.Context, jid string) error
	// ListUsers returns every account's bare JID, sorted.
	ListUsers(ctx context.Context) ([]string, error)
}

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// A RosterItem is one contact in an account's roster, with the subscription
// state of RFC 6121 Appendix A split into its parts.
type RosterItem struct {
	// Contact is the contact's bare JID, normalised.
	Contact string
	Name    string
	// Subscription is one of SubNone, SubTo, SubFrom, SubBoth.
	Subscription string
	// Ask is "Pending Out": the account asked to subscribe to the contact
	// and has no answer yet.
	Ask bool
	// PendingIn is "Pending In": the contact asked to subscribe to the
	// account and has no answer yet.
	PendingIn bool
	// Approved is a pre-approval (RFC 6121 §3.4).
	Approved bool
	// Groups are distinct and sorted.
	Groups []string
}

// Normal returns item as backends store it: Groups as NormalGroups makes
// them, and an empty Subscription as SubNone.
func (item RosterItem) Normal() RosterItem {
	item.Groups = NormalGroups(item.Groups)
	if item.Subscription == "" {
		item.Subscription = SubNone
	}
	return item
}

// NormalGroups returns groups sorted (byte order) and distinct, as
// RosterItem.Groups and SharedContact.Groups are, in a new slice; nil when
// there are none.
func NormalGroups(groups []string) []string {
	if len(groups) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(groups)))
}

// Rosters stores each account's roster (RFC 6121 §2).
type Rosters interface {
	// Roster returns an account's items sorted by contact; none is not an
	// error.
	Roster(ctx context.Context, owner string) ([]RosterItem, error)
	// RosterItem returns one item; ErrNotFound if absent.
	RosterItem(ctx context.Context, owner, contact string) (RosterItem, error)
	// PutRosterItem adds or replaces the item for item.Contact. Adding an
	// item to a roster that already holds max items (max > 0) fails with
	// ErrLimit; replacing one never does.
	PutRosterItem(ctx context.Context, owner string, item RosterItem, max int) error
	// DeleteRosterItem removes an item; ErrNotFound if absent.
	DeleteRosterItem(ctx context.Context, owner, contact string) error
}

// An OfflineMessage is a stanza kept for an account with no available
// resource (XEP-0160).
type OfflineMessage struct {
	// ID increases in arrival order within an account's queue.
	ID int64
	// Data is the stanza serialised in the jabber:client namespace.
	Data []byte
}

// OfflineLimits bound what StoreOffline keeps; a field that is zero or
// negative sets no limit.
type OfflineLimits struct {
	// PerAccount is the most messages one account's queue may hold.
	PerAccount int
	// TotalBytes is the most bytes (of OfflineMessage.Data) that all queues
	// together may hold: everything in the database, whichever node stored
	// it.
	TotalBytes int64
}

// OfflineUsage is what all offline queues hold together.
type OfflineUsage struct {
	Messages int64
	Bytes    int64
}

// Offline stores messages for accounts that are offline, in order.
type Offline interface {
	// StoreOffline appends a message to owner's queue, durably, before it
	// returns. When owner's queue already holds lim.PerAccount messages it
	// fails with ErrLimit; when the message would take the bytes of all
	// queues past lim.TotalBytes it fails with ErrTotalLimit; either way it
	// stores nothing.
	StoreOffline(ctx context.Context, owner string, data []byte, lim OfflineLimits) error
	// OfflineMessages returns owner's queue in arrival order.
	OfflineMessages(ctx context.Context, owner string) ([]OfflineMessage, error)
	// DeleteOffline removes owner's messages with ID <= upTo.
	DeleteOffline(ctx context.Context, owner string, upTo int64) error
	// OfflineUsage returns what all queues hold, as the TotalBytes limit
	// counts it: every message that is stored, however it came or went
	// (DeleteUser, or an operator's SQL, included).
	OfflineUsage(ctx context.Context) (OfflineUsage, error)
}

// Group kinds.
const (
	KindTeam    = "team"
	KindProject = "project"
)

// A Group is a team or a project of the app that owns the server. Everyone
// who shares a group sees the others in their roster.
type Group struct {
	// ID is chosen by the app (or the admin): stable, unique, non-empty.
	ID string
	// Kind is KindTeam or KindProject.
	Kind string
	// Name is what rosters show as the group of the co-members.
	Name string
	// Parent is a project's team ID, or "".
	Parent string
}

// Validate reports what a backend's schema would reject in g, to say so
// plainly: an empty ID, an unknown Kind, a team with a Parent. Whether the
// Parent exists and is a team only the backend can tell.
func (g Group) Validate() error {
	switch {
	case g.ID == "":
		return errors.New("empty ID")
	case g.Kind != KindTeam && g.Kind != KindProject:
		return fmt.Errorf("kind %q is neither %s nor %s", g.Kind, KindTeam, KindProject)
	case g.Kind == KindTeam && g.Parent != "":
		return errors.New("a team has no parent")
	}
	return nil
}

// A SharedContact is someone who shares one or more groups with an account.
type SharedContact struct {
	JID string
	// Groups are the names of the shared groups, distinct and sorted.
	Groups []string
}

// A GroupChange says that a group or its membership changed, by whatever
// means (this process, xmppctl, the app's own SQL). GroupChange{}, with an
// empty Group, means that anything may have changed (a watch lost track, for
// instance while it reconnected): resynchronise everything.
type GroupChange struct {
	Group string
	// JID is the member added or removed; "" when the group itself changed
	// (renamed, created, deleted).
	JID string
}

// Groups stores teams, projects and their members.
type Groups interface {
	// CreateGroup adds a group; ErrExists if its ID is taken, ErrNotFound
	// if its Parent does not exist.
	CreateGroup(ctx context.Context, g Group) error
	// DeleteGroup removes a group and its memberships; ErrNotFound if
	// absent.
	DeleteGroup(ctx context.Context, id string) error
	// RenameGroup changes the name rosters show for a group; ErrNotFound
	// if absent. Watches report it as a change of the group itself.
	RenameGroup(ctx context.Context, id, name string) error
	// Group returns one group; ErrNotFound if absent.
	Group(ctx context.Context, id string) (Group, error)
	// ListGroups returns every group sorted by ID.
	ListGroups(ctx context.Context) ([]Group, error)
	// AddMember adds a bare JID to a group; ErrNotFound if the group does not
	// exist, ErrExists if the JID is a member already.
	AddMember(ctx context.Context, group, jid string) error
	// RemoveMember removes a member; ErrNotFound if it is not one.
	RemoveMember(ctx context.Context, group, jid string) error
	// ChangeMembers adds and removes several members of a group in one
	// transaction, all or none: adding a member or removing a non-member
	// is no error. ErrNotFound if the group does not exist.
	ChangeMembers(ctx context.Context, group string, add, remove []string) error
	// Members returns a group's members, sorted; ErrNotFound if the group
	// does not exist.
	Members(ctx context.Context, group string) ([]string, error)
	// CoMembers returns everyone other than jid who shares a group with it,
	// sorted by JID.
	CoMembers(ctx context.Context, jid string) ([]SharedContact, error)
	// IsMember reports whether jid belongs to any group.
	IsMember(ctx context.Context, jid string) (bool, error)
	// WatchGroups reports every change to groups and memberships, made by
	// anyone, from the moment it returns until ctx ends, when the channel is
	// closed. Changes may be coalesced or repeated but not lost while the
	// watch runs.
	WatchGroups(ctx context.Context) (<-chan GroupChange, error)
}

// Secrets keeps the server's own random keys in the store, so that every
// node sharing it, and every restart, uses the same ones.
type Secrets interface {
	// Secret returns the secret called name, made of size random bytes the
	// first time it is asked for; every later call, from any process on the
	// same database, returns the same bytes, whatever its size argument.
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}

// Store is a complete backend: every aggregate, and Close.
type Store interface {
	Users
	Rosters
	Offline
	Groups
	Rooms
	Archive
	Secrets
	Push
	Blocking
	Uploads
	XMLDocs
	Invites
	PEP
	APITokens
	Close() error
}

// A Resource is one session's entry in the presence registry.
type Resource struct {
	// Resource is the resourcepart of the session's full JID.
	Resource string
	// Node names the xmppd process that holds the session.
	Node string
	// Available is true once the session has sent available presence.
	Available bool
	// Priority is from the last available presence (RFC 6121 §4.7.2.3).
	Priority int
	// Presence is the last broadcast presence, serialised in the
	// jabber:client namespace, or nil. What Resources returns is to be
	// read only: a registry may share it.
	Presence []byte
}

// A Registry records which sessions exist, on which node, with their
// presence, so that several nodes can share one view (the presence and
// session registry of docs/ARCHITECTURE.md). Entries of a node that stops
// without removing them (a crash) disappear within the registry's TTL.
type Registry interface {
	// SetResource adds or replaces the entry for bare/r.Resource.
	SetResource(ctx context.Context, bare string, r Resource) error
	// RemoveResource removes an entry; removing a missing one is not an
	// error.
	RemoveResource(ctx context.Context, bare, resource string) error
	// Resources returns the live entries of a bare JID sorted by resource.
	Resources(ctx context.Context, bare string) ([]Resource, error)
	// Close removes this node's entries and releases the registry.
	Close() error
}

// A Bus carries payloads (serialised stanzas) from one node to another
// named node, for a session the registry places there (the cluster bus of
// docs/ARCHITECTURE.md). Delivery is at most once: a payload is never
// repeated, and one may be lost (the receiver restarting, or falling
// behind). Payloads from one publisher to one node arrive in the order
// they were published.
type Bus interface {
	// Publish sends payload to node. received is false when no process of
	// that name was listening: the caller falls back as for a recipient
	// that is not online (offline storage for a message). true means the
	// node took the payload, not that it delivered it.
	Publish(ctx context.Context, node string, payload []byte) (received bool, err error)
	// PublishMany sends several payloads in one round trip, in order, and
	// reports for each whether its node took it.
	PublishMany(ctx context.Context, msgs []BusMessage) (received []bool, err error)
	// Serve starts delivering this node's payloads to h, one at a time in
	// order, and returns once the node is listening. It may be called
	// once; Close stops it, and waits for h to return.
	Serve(ctx context.Context, h func(payload []byte)) error
	// Close stops listening and releases the bus.
	Close() error
}

// A BusMessage is one payload of Bus.PublishMany.
type BusMessage struct {
	Node    string
	Payload []byte
}

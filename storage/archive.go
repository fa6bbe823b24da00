package storage

import (
	"context"
	"time"
)

// An ArchivedMessage is one message in a message archive (XEP-0313): an
// account's conversations, or a room's groupchat.
type ArchivedMessage struct {
	// ID is the archive id (the XEP-0359 stanza-id) chosen by the caller:
	// unique in the whole store, and increasing in the byte order of the
	// string as messages arrive, so that the byte order of IDs is the order
	// of the archive. Paging (AfterID, BeforeID) and ordering use it, never
	// Time.
	ID string
	// Owner is the archive: an account's or a room's bare JID, normalised.
	Owner string
	// With is the bare JID of the other party: for an account, whom the
	// message was to or from; for a room, the sender's real bare JID when
	// known, else "".
	With string
	// Time is when the server archived the message, in UTC; backends keep
	// it to the microsecond.
	Time time.Time
	// Data is the message serialised in the jabber:client namespace.
	Data []byte
}

// An ArchiveQuery selects one page of an archive. Filters combine (AND);
// a zero field filters nothing.
type ArchiveQuery struct {
	// With keeps only messages whose With equals it.
	With string
	// Start and End keep only messages whose Time is in [Start, End]
	// (both inclusive).
	Start, End time.Time
	// IDs keeps only messages with one of these IDs (XEP-0313 §4.1.4).
	IDs []string
	// AfterID keeps only messages after it in archive order, BeforeID only
	// those before it. An ID that is not in Owner's archive makes the query
	// fail with ErrNotFound (XEP-0313 §6.1: item-not-found).
	AfterID, BeforeID string
	// Max is the most messages returned; 0 or less means no limit.
	Max int
	// Last asks for the page at the end of the selection rather than at its
	// start (XEP-0059 §2.5: an empty <before/>, or BeforeID set): the Max
	// messages closest to BeforeID, or the newest when BeforeID is empty.
	Last bool
}

// An ArchivePage is the answer to an ArchiveQuery.
type ArchivePage struct {
	// Messages are in archive order (oldest first), whichever end the page
	// was taken from.
	Messages []ArchivedMessage
	// Complete is true when no message of the selection lies beyond this
	// page in the direction of paging: after it for a forward query, before
	// it for a Last one (XEP-0313 §4.3, <fin complete='true'/>).
	Complete bool
}

// ArchivePrefs are an account's archiving preferences (XEP-0313 §6).
type ArchivePrefs struct {
	// Default is "always", "never" or "roster".
	Default string
	// Always and Never are bare JIDs, distinct and sorted.
	Always []string
	Never  []string
}

// Archive stores message archives (XEP-0313) of accounts and rooms.
type Archive interface {
	// AppendArchive stores msgs, all or none, durably before it returns.
	// An ID that is already stored makes it fail with ErrExists and store
	// nothing.
	AppendArchive(ctx context.Context, msgs ...ArchivedMessage) error
	// QueryArchive returns one page of owner's archive. An empty archive,
	// or one the filters empty, is an empty complete page, not an error.
	QueryArchive(ctx context.Context, owner string, q ArchiveQuery) (ArchivePage, error)
	// DeleteArchive removes every message of owner's archive (an account
	// or a room that is deleted).
	DeleteArchive(ctx context.Context, owner string) error
	// PruneArchive removes, in every archive, the messages older than
	// before (none when before is zero) and, when perOwner > 0, the oldest
	// messages of any archive holding more than perOwner. It returns how
	// many it removed.
	PruneArchive(ctx context.Context, before time.Time, perOwner int) (int64, error)
	// ArchivePrefs returns owner's preferences; ErrNotFound when none were
	// ever set (the caller applies its default).
	ArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error)
	// SetArchivePrefs replaces owner's preferences.
	SetArchivePrefs(ctx context.Context, owner string, p ArchivePrefs) error
}

// Normal returns p as backends store it: Always and Never as NormalGroups
// makes them (sorted, distinct, nil when empty).
func (p ArchivePrefs) Normal() ArchivePrefs {
	p.Always = NormalGroups(p.Always)
	p.Never = NormalGroups(p.Never)
	return p
}

package storage

import "context"

// Blocking stores each account's block list (XEP-0191): the JIDs whose
// communication with the account the server refuses. An item is a JID in
// one of the forms XEP-0191 §3.3 and XEP-0016 §2.1 allow, normalised by the
// caller: bare (user@domain), full (user@domain/resource), a domain
// (domain) or a domain's resource (domain/resource). The store compares
// items as bytes and does not interpret them.
type Blocking interface {
	// BlockList returns owner's blocked JIDs in byte order; none is not an
	// error.
	BlockList(ctx context.Context, owner string) ([]string, error)
	// Block adds jids to owner's list; one already there is not an error
	// and is not added twice. When the list would then hold more than max
	// items (max > 0) nothing is added and it fails with ErrLimit. It
	// returns how many items were added.
	Block(ctx context.Context, owner string, jids []string, max int) (int, error)
	// Unblock removes jids from owner's list, and returns how many it
	// removed; one not there is not an error.
	Unblock(ctx context.Context, owner string, jids []string) (int, error)
	// UnblockAll empties owner's list (XEP-0191 §3.5) and returns how many
	// items it removed.
	UnblockAll(ctx context.Context, owner string) (int, error)
}

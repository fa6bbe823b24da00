package storage

import (
	"context"
	"time"
)

// Invites stores invitations to create an account by in-band registration
// (XEP-0077 with the server's require_invite): each is a hash of a token
// handed to the invitee (never the token), good once, until it expires.
type Invites interface {
	// CreateInvite adds an invitation; ErrExists if its hash is there.
	CreateInvite(ctx context.Context, hash []byte, expires time.Time) error
	// UseInvite spends the invitation with that hash: it is removed if it
	// expires after now, and the call succeeds; otherwise (absent, spent
	// or expired) it fails with ErrNotFound. Of two calls for one
	// invitation at once, one succeeds.
	UseInvite(ctx context.Context, hash []byte, now time.Time) error
	// DeleteExpiredInvites removes the invitations expired at now and
	// returns how many.
	DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error)
}

// Package storage defines xmppd's durable state as one small interface per
// aggregate. Backends live below it (storage/sqlite, the embedded default, and
// storage/postgres); storage/storagetest is the conformance suite that every
// backend must pass.
package storage

import (
	"context"
	"errors"
)

// Errors shared by every backend; callers test with errors.Is.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrExists   = errors.New("storage: already exists")
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

// Store is a complete backend: every aggregate, and Close.
type Store interface {
	Users
	Close() error
}

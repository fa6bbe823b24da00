package storage

import (
	"context"
	"time"
)

// An APIToken is a bearer token of the admin HTTP API, as stored: its name
// and the SHA-256 of the token, never the token itself, so that a copy of
// the database does not open the API.
type APIToken struct {
	// Name says whose the token is ("billing-app"); it is what the change
	// log shows and what revokes the token.
	Name    string
	Created time.Time
	// LastUsed is when the token last authorised a request, to within the
	// minute; zero when never.
	LastUsed time.Time
}

// APITokens stores the admin API's tokens.
type APITokens interface {
	// CreateAPIToken adds a token; ErrExists if its name or its hash is
	// taken.
	CreateAPIToken(ctx context.Context, name string, hash []byte, created time.Time) error
	// APITokenByHash returns the token with that hash; ErrNotFound if none
	// (never made, or revoked).
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	// TouchAPIToken sets the token's LastUsed to at; ErrNotFound if it is
	// gone.
	TouchAPIToken(ctx context.Context, name string, at time.Time) error
	// ListAPITokens returns every token sorted by name.
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	// DeleteAPIToken revokes a token; ErrNotFound if there is none by that
	// name.
	DeleteAPIToken(ctx context.Context, name string) error
}

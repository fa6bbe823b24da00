package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// TokenPrefix starts every API token, so that one pasted where it should
// not be (a log, a repository) is recognised for what it is.
const TokenPrefix = "xmppd_"

// tokenBytes is the token's randomness: 256 bits, beyond guessing, which
// is why a plain hash (not a slow password hash) protects it at rest.
const tokenBytes = 32

// touchEvery bounds how often a token's LastUsed is written: once a
// minute, not once a request.
const touchEvery = time.Minute

// NewToken returns a new API token and the hash to store for it.
func NewToken() (token string, hash []byte) {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is what is stored for token: its SHA-256.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// ValidTokenName reports what is wrong with a token's name, or nil: 1 to 64
// letters, digits, '.', '_', '-' or '@', so that it reads plainly in logs.
func ValidTokenName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("a token's name has 1 to 64 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Errorf("a token's name has letters, digits, '.', '_', '-' and '@' only, not %q", r)
		}
	}
	return nil
}

// StoredTokens checks tokens against storage. Nothing is cached: each
// request looks its token's hash up, so that a revoked token is refused
// from the next request on, on every node sharing the store.
type StoredTokens struct {
	Store storage.APITokens
}

// Check implements Tokens.
func (s StoredTokens) Check(ctx context.Context, token string) (string, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return "", fmt.Errorf("admin: not an API token: %w", storage.ErrNotFound)
	}
	t, err := s.Store.APITokenByHash(ctx, HashToken(token))
	if err != nil {
		return "", err
	}
	if now := time.Now(); now.Sub(t.LastUsed) >= touchEvery {
		// Only a hint for whoever prunes tokens: a failure to record it
		// does not refuse the request (ErrNotFound: revoked meanwhile).
		if err := s.Store.TouchAPIToken(ctx, t.Name, now); errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	return t.Name, nil
}

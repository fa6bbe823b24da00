package xmpp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
)

// A TokenVerifier decides sign-ins with tokens that an app issues to its
// users (see Server.Tokens); internal/apptoken has the JWT one.
type TokenVerifier interface {
	// VerifyToken returns nil when token lets bare (user@domain, normalised)
	// sign in.
	VerifyToken(ctx context.Context, bare, token string) error
}

// ErrTokenUnverified is what a TokenVerifier's error wraps when it could not
// decide, because what it consults (storage) did not answer: the client is
// told <temporary-auth-failure/> (RFC 6120 §6.5.9) and the attempt does not
// count as a failure.
var ErrTokenUnverified = errors.New("xmpp: the token could not be checked now")

// tokenShaped reports whether a PLAIN password is a JWS in compact form (RFC
// 7515 §7.1): three base64url parts, the first a JSON object. Only such a
// password is checked as a token, so that ordinary passwords with dots in
// them still work when tokens are on.
func tokenShaped(password string) bool {
	header, rest, ok := strings.Cut(password, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return false
	}
	for _, p := range []string{header, payload, sig} {
		if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	h, err := base64.RawURLEncoding.DecodeString(header)
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(h), []byte("{"))
}

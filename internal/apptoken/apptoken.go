package apptoken

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// MinSecretSize is the shortest secret accepted, in bytes: RFC 7518 §3.2
// requires an HS256 key at least as long as the hash output.
const MinSecretSize = 32

// alg is the only signing algorithm accepted. Naming it alone also rules out
// "none" and the public-key algorithms, whose confusion with HMAC is the
// classic JWT forgery (RFC 8725 §2.1, §3.1).
const alg = "HS256"

// Errors of Verify and SignIn beyond those of jwt (jwt.ErrTokenExpired and
// the like, which errors.Is also finds).
var (
	// ErrSecret says the secret is shorter than MinSecretSize.
	ErrSecret = errors.New("apptoken: secret shorter than 32 bytes")
	// ErrSubject says the token's subject is not an account address, or
	// not the user signing in.
	ErrSubject = errors.New("apptoken: subject is not the user")
	// ErrUnknownUser says the subject has no account and is in no group.
	ErrUnknownUser = errors.New("apptoken: neither an account nor a group member")
)

// Mint returns a token that lets jid (a bare JID, user@domain) sign in until
// now+ttl, for audience (default: jid's domain). It is what the app does;
// xmppd uses it for `xmppctl token mint` and tests.
func Mint(secret []byte, jid, audience string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretSize {
		return "", ErrSecret
	}
	if ttl <= 0 {
		return "", errors.New("apptoken: the lifetime must be positive")
	}
	bare, err := account(jid)
	if err != nil {
		return "", err
	}
	if audience == "" {
		audience = bare.Domainpart()
	}
	claims := jwt.RegisteredClaims{
		Subject:   bare.String(),
		Audience:  jwt.ClaimStrings{audience},
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// A Verifier checks tokens. Its zero Audience means the domain of the
// token's subject; its zero Leeway tolerates no clock skew.
type Verifier struct {
	// Secret is the key shared with the app, at least MinSecretSize bytes.
	Secret []byte
	// Audience is the "aud" value a token must contain.
	Audience string
	// Leeway is the clock skew allowed for "exp", "nbf" and "iat".
	Leeway time.Duration
}

// Verify checks token's signature and claims at time now and returns the bare
// JID it names. The token must be HS256, unexpired ("exp" is required), not
// before its "nbf" or "iat", for the audience, about an account address.
func (v Verifier) Verify(token string, now time.Time) (string, error) {
	if len(v.Secret) < MinSecretSize {
		return "", ErrSecret
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// Canonical base64 only, so that every changed character of the
		// token changes what is verified.
		jwt.WithStrictDecoding(),
	)
	var claims jwt.RegisteredClaims
	_, err := p.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, fmt.Errorf("signing method %v", t.Header["alg"])
		}
		return v.Secret, nil
	})
	if err != nil {
		return "", fmt.Errorf("apptoken: %w", err)
	}
	bare, err := account(claims.Subject)
	if err != nil {
		return "", err
	}
	aud := v.Audience
	if aud == "" {
		aud = bare.Domainpart()
	}
	if !slices.Contains(claims.Audience, aud) {
		return "", fmt.Errorf("apptoken: %w", jwt.ErrTokenInvalidAudience)
	}
	return bare.String(), nil
}

// account parses an account address, user@domain, normalised.
func account(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("%w: %q is not an account address (user@domain)", ErrSubject, s)
	}
	return j, nil
}

// Directory is what SignIn needs from storage: whether an address has an
// account or belongs to a team or project.
type Directory interface {
	Credentials(ctx context.Context, jid string) (storage.Credentials, error)
	IsMember(ctx context.Context, jid string) (bool, error)
}

// SignIn decides sign-ins with tokens; it is an xmpp.TokenVerifier. A valid
// token for the user lets them in when they have an account or are a member
// of a group, so that the app's users need no `xmppctl user add`.
type SignIn struct {
	Verifier Verifier
	Store    Directory
}

// VerifyToken returns nil when token is valid and names bare, and bare has
// an account or a group.
func (s SignIn) VerifyToken(ctx context.Context, bare, token string) error {
	sub, err := s.Verifier.Verify(token, time.Now())
	if err != nil {
		return err
	}
	if sub != bare {
		return ErrSubject
	}
	_, err = s.Store.Credentials(ctx, bare)
	if err == nil {
		return nil
	}
	// A lookup that fails is no verdict on the token: the client is told
	// to try again later, and nothing counts it as a failure.
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("apptoken: account lookup: %w: %w", xmpp.ErrTokenUnverified, err)
	}
	member, err := s.Store.IsMember(ctx, bare)
	if err != nil {
		return fmt.Errorf("apptoken: group lookup: %w: %w", xmpp.ErrTokenUnverified, err)
	}
	if !member {
		return ErrUnknownUser
	}
	return nil
}

package apptoken_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

var _ xmpp.TokenVerifier = apptoken.SignIn{}

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	b64    = base64.RawURLEncoding
)

// claims are a token's payload, for tokens made by hand.
type claims map[string]any

func valid() claims {
	return claims{
		"sub": "alice@example.com",
		"aud": "example.com",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func (c claims) with(k string, v any) claims {
	d := claims{}
	for k, v := range c {
		d[k] = v
	}
	if v == nil {
		delete(d, k)
	} else {
		d[k] = v
	}
	return d
}

// hs256 signs c with key, and with whatever header alg says, so that the
// header can lie.
func hs256(t *testing.T, alg string, c claims, key []byte) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	text := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(text))
	return text + "." + b64.EncodeToString(m.Sum(nil))
}

// signed signs c with a real jwt signing method.
func signed(t *testing.T, m jwt.SigningMethod, c claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, jwt.MapClaims(c)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// part replaces one of the token's three parts by f of its decoded bytes.
func part(t *testing.T, token string, i int, f func([]byte) []byte) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := b64.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	parts[i] = b64.EncodeToString(f(b))
	return strings.Join(parts, ".")
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := hs256(t, "HS256", valid(), secret)
	v := apptoken.Verifier{Secret: secret, Audience: "example.com"}
	for _, tc := range []struct {
		name  string
		v     apptoken.Verifier
		token string
		err   error // nil: valid for alice@example.com
	}{
		{"valid", v, good, nil},
		{"valid, minted", v, mint(t, "alice@example.com", "", time.Hour, now), nil},
		{"subject normalised", v, hs256(t, "HS256", valid().with("sub", "Alice@EXAMPLE.com"), secret), nil},
		{"audience in a list", v, hs256(t, "HS256", valid().with("aud", []string{"app", "example.com"}), secret), nil},
		{"default audience is the subject's domain", apptoken.Verifier{Secret: secret}, good, nil},
		{"not yet valid, in leeway", apptoken.Verifier{Secret: secret, Leeway: time.Minute},
			hs256(t, "HS256", valid().with("nbf", now.Add(30*time.Second).Unix()), secret), nil},
		{"expired, in leeway", apptoken.Verifier{Secret: secret, Leeway: time.Minute},
			hs256(t, "HS256", valid().with("exp", now.Add(-30*time.Second).Unix()), secret), nil},

		{"expired", v, hs256(t, "HS256", valid().with("exp", now.Add(-time.Second).Unix()), secret), jwt.ErrTokenExpired},
		{"expires now", v, hs256(t, "HS256", valid().with("exp", now.Unix()), secret), jwt.ErrTokenExpired},
		{"expired, minted", v, mint(t, "alice@example.com", "", time.Hour, now.Add(-2*time.Hour)), jwt.ErrTokenExpired},
		{"expired, beyond leeway", apptoken.Verifier{Secret: secret, Leeway: time.Minute},
			hs256(t, "HS256", valid().with("exp", now.Add(-2*time.Minute).Unix()), secret), jwt.ErrTokenExpired},
		{"not yet valid", v, hs256(t, "HS256", valid().with("nbf", now.Add(time.Minute).Unix()), secret), jwt.ErrTokenNotValidYet},
		{"issued in the future", v, hs256(t, "HS256", valid().with("iat", now.Add(time.Minute).Unix()), secret), jwt.ErrTokenUsedBeforeIssued},
		{"missing exp", v, hs256(t, "HS256", valid().with("exp", nil), secret), jwt.ErrTokenRequiredClaimMissing},
		{"exp not a number", v, hs256(t, "HS256", valid().with("exp", "tomorrow"), secret), jwt.ErrTokenMalformed},
		{"tampered signature", v, part(t, good, 2, func(b []byte) []byte { b[0] ^= 1; return b }), jwt.ErrTokenSignatureInvalid},
		{"signature cut off", v, good[:strings.LastIndex(good, ".")+1], jwt.ErrTokenSignatureInvalid},
		{"tampered payload", v, part(t, good, 1, func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "alice", "carol", 1))
		}), jwt.ErrTokenSignatureInvalid},
		{"signature re-encoded non-canonically", v, nonCanonical(t, good), jwt.ErrTokenMalformed},
		{"wrong secret", v, hs256(t, "HS256", valid(), []byte("another secret of thirty-two bytes")), jwt.ErrTokenSignatureInvalid},
		{"wrong audience", v, hs256(t, "HS256", valid().with("aud", "chat.example.org"), secret), jwt.ErrTokenInvalidAudience},
		{"wrong audience, minted", v, mint(t, "alice@example.com", "other", time.Hour, now), jwt.ErrTokenInvalidAudience},
		{"missing audience", v, hs256(t, "HS256", valid().with("aud", nil), secret), jwt.ErrTokenInvalidAudience},
		{"wrong default audience", apptoken.Verifier{Secret: secret}, hs256(t, "HS256", valid().with("aud", "app"), secret), jwt.ErrTokenInvalidAudience},
		{"alg none", v, noneToken(t), jwt.ErrTokenSignatureInvalid},
		{"RS256", v, signed(t, jwt.SigningMethodRS256, valid(), rsaKey), jwt.ErrTokenSignatureInvalid},
		{"RS256 header on an HMAC", v, hs256(t, "RS256", valid(), secret), jwt.ErrTokenSignatureInvalid},
		{"HS512", v, signed(t, jwt.SigningMethodHS512, valid(), secret), jwt.ErrTokenSignatureInvalid},
		{"HS256 spelt otherwise", v, hs256(t, "hs256", valid(), secret), jwt.ErrTokenUnverifiable},
		{"missing subject", v, hs256(t, "HS256", valid().with("sub", nil), secret), apptoken.ErrSubject},
		{"subject with a resource", v, hs256(t, "HS256", valid().with("sub", "alice@example.com/phone"), secret), apptoken.ErrSubject},
		{"subject a domain", v, hs256(t, "HS256", valid().with("sub", "example.com"), secret), apptoken.ErrSubject},
		{"not a token", v, "alice's password", jwt.ErrTokenMalformed},
		{"short secret", apptoken.Verifier{Secret: secret[:31]}, good, apptoken.ErrSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := tc.v.Verify(tc.token, now)
			if tc.err == nil {
				if err != nil || sub != "alice@example.com" {
					t.Fatalf("Verify = %q, %v; want alice@example.com", sub, err)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Verify = %q, %v; want %v", sub, err, tc.err)
			}
			if sub != "" {
				t.Fatalf("Verify returned subject %q with its error", sub)
			}
		})
	}
}

func mint(t *testing.T, jid, aud string, ttl time.Duration, at time.Time) string {
	t.Helper()
	tok, err := apptoken.Mint(secret, jid, aud, ttl, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// noneToken is an unsigned token (RFC 7519 §6), which must never pass.
func noneToken(t *testing.T) string {
	t.Helper()
	return signed(t, jwt.SigningMethodNone, valid(), jwt.UnsafeAllowNoneSignatureType)
}

// nonCanonical sets the unused low bits of the signature's last base64
// character (32 bytes take 43 characters, 2 bits to spare): a decoder that
// ignored them would verify the same bytes for a different token.
func nonCanonical(t *testing.T, token string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.LastIndexByte(token, '.')
	sig := token[i+1:]
	if len(sig) != 43 {
		t.Fatalf("signature %q is not 43 characters", sig)
	}
	c := strings.IndexByte(alphabet, sig[42])
	return token[:len(token)-1] + string(alphabet[c^1])
}

func TestMint(t *testing.T) {
	tok := mint(t, "Alice@Example.com", "", 10*time.Minute, now)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	var header map[string]any
	var payload map[string]any
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := b64.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	if header["alg"] != "HS256" {
		t.Errorf("header %v, want alg HS256", header)
	}
	want := map[string]any{
		"sub": "alice@example.com",
		"aud": []any{"example.com"},
		"iat": float64(now.Unix()),
		"exp": float64(now.Add(10 * time.Minute).Unix()),
	}
	if len(payload) != len(want) {
		t.Errorf("payload %v, want %v", payload, want)
	}
	for k, w := range want {
		got, _ := json.Marshal(payload[k])
		exp, _ := json.Marshal(w)
		if string(got) != string(exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}

	for _, tc := range []struct {
		name   string
		secret []byte
		jid    string
		ttl    time.Duration
		want   string
	}{
		{"short secret", secret[:31], "alice@example.com", time.Hour, "secret"},
		{"zero ttl", secret, "alice@example.com", 0, "lifetime"},
		{"negative ttl", secret, "alice@example.com", -time.Hour, "lifetime"},
		{"domain", secret, "example.com", time.Hour, "account address"},
		{"full JID", secret, "alice@example.com/r", time.Hour, "account address"},
		{"invalid", secret, "@@", time.Hour, "account address"},
	} {
		if tok, err := apptoken.Mint(tc.secret, tc.jid, "", tc.ttl, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Mint = %q, %v; want an error about %q", tc.name, tok, err, tc.want)
		}
	}
}

// directory is a Directory in memory.
type directory struct {
	accounts, members map[string]bool
	err               error
}

func (d directory) Credentials(_ context.Context, jid string) (storage.Credentials, error) {
	if d.err != nil {
		return storage.Credentials{}, d.err
	}
	if d.accounts[jid] {
		return storage.Credentials{}, nil
	}
	return storage.Credentials{}, storage.ErrNotFound
}

func (d directory) IsMember(_ context.Context, jid string) (bool, error) {
	return d.members[jid], d.err
}

func TestSignIn(t *testing.T) {
	dir := directory{
		accounts: map[string]bool{"alice@example.com": true},
		members:  map[string]bool{"bob@example.com": true, "alice@example.com": true},
	}
	s := apptoken.SignIn{Verifier: apptoken.Verifier{Secret: secret, Audience: "example.com"}, Store: dir}
	n := time.Now()
	tok := func(jid string) string {
		t.Helper()
		return mint(t, jid, "", time.Hour, n)
	}
	storeDown := s
	storeDown.Store = directory{err: errors.New("connection refused")}
	for _, tc := range []struct {
		name       string
		s          apptoken.SignIn
		user, tok  string
		err        error
		errContain string
	}{
		{"account", s, "alice@example.com", tok("alice@example.com"), nil, ""},
		{"group member without account", s, "bob@example.com", tok("bob@example.com"), nil, ""},
		{"neither", s, "carol@example.com", tok("carol@example.com"), apptoken.ErrUnknownUser, ""},
		{"someone else's token", s, "bob@example.com", tok("alice@example.com"), apptoken.ErrSubject, ""},
		{"expired", s, "alice@example.com", mint(t, "alice@example.com", "", time.Hour, n.Add(-2*time.Hour)), jwt.ErrTokenExpired, ""},
		{"storage down", storeDown, "alice@example.com", tok("alice@example.com"), nil, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.VerifyToken(context.Background(), tc.user, tc.tok)
			switch {
			case tc.errContain != "":
				if err == nil || !strings.Contains(err.Error(), tc.errContain) {
					t.Fatalf("VerifyToken = %v, want an error containing %q", err, tc.errContain)
				}
			case tc.err == nil:
				if err != nil {
					t.Fatalf("VerifyToken = %v", err)
				}
			case !errors.Is(err, tc.err):
				t.Fatalf("VerifyToken = %v, want %v", err, tc.err)
			}
		})
	}
}

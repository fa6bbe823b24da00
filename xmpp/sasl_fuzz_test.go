package xmpp

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"mellium.im/sasl"

	"github.com/xmppd/xmppd/storage"
)

// fuzzAccount is the one account of the SASL fuzz targets.
const (
	fuzzAccount  = "alice@example.com"
	fuzzPassword = "pencil"
)

// fuzzAuthenticator is an authenticator for example.com whose only account
// is fuzzAccount, with few PBKDF2 iterations so that the fuzzer runs fast.
func fuzzAuthenticator(tb testing.TB, creds storage.Credentials) *authenticator {
	tb.Helper()
	unknown, err := NewCredentials("unknown", 2)
	if err != nil {
		tb.Fatal(err)
	}
	return &authenticator{
		domain: "example.com",
		lookup: func(_ context.Context, bare string) (storage.Credentials, error) {
			if bare == fuzzAccount {
				return creds, nil
			}
			return storage.Credentials{}, storage.ErrNotFound
		},
		unknown: func(string) storage.Credentials { return unknown },
	}
}

// checkSASLError checks what a failed SASL step returned: an error that
// mellium answers with <not-authorized/> (an errAuth), and a reason for the
// client's <text/> and the log that is bounded and valid UTF-8 whatever the
// client sent.
func checkSASLError(t *testing.T, a *authenticator, err error) {
	t.Helper()
	if !errors.Is(err, sasl.ErrAuthn) {
		t.Fatalf("error %v is not an authentication failure", err)
	}
	if len(a.reason) > 512 || !utf8.ValidString(a.reason) {
		t.Fatalf("reason %q: longer than 512 bytes or not UTF-8", a.reason)
	}
}

// FuzzSCRAM runs the server side of SCRAM (RFC 5802) on client messages
// from the fuzzer. In the client-final-message, NONCE stands for the
// server's nonce, CBIND for the right channel binding value and PROOF (at
// the end) for the right proof, so that the fuzzer reaches every check and
// the success path. The server must never accept a proof other than the
// one the password gives, must fail only with SASL failures, and must
// answer success with the right server signature.
func FuzzSCRAM(f *testing.F) {
	f.Add("n,,n=alice,r=abc", "c=CBIND,r=NONCE,p=PROOF", true)
	f.Add("n,,n=alice,r=abc", "c=CBIND,r=NONCE,p=PROOF", false)
	f.Add("n,,n=alice,r=abc", "c=biws,r=NONCE,p=AAAA", false)
	f.Add("n,a=alice@example.com,n=alice,r=x", "c=CBIND,r=NONCE,e=1,p=PROOF", true)
	f.Add("y,,n=al=2Cice,r=x", "c=CBIND,r=NONCE,p=", true)
	f.Add("p=tls-unique,,n=alice,r=x", "", false)
	f.Add("n,,m=ext,n=alice,r=x", "", true)
	f.Add("n,,n=bob,r=x", "c=CBIND,r=NONCE,p=PROOF", true)
	f.Add(",,", ",p=", false)
	creds, err := NewCredentials(fuzzPassword, 2)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, final string, sha256Hash bool) {
		scramExchange(t, creds, first, final, sha256Hash)
	})
}

// The fuzz target's placeholders do reach the success path: the seed
// with the right proof signs in, with either hash.
func TestSCRAMFuzzSeedSignsIn(t *testing.T) {
	creds, err := NewCredentials(fuzzPassword, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, sha256Hash := range []bool{false, true} {
		if !scramExchange(t, creds, "n,,n=alice,r=abc", "c=CBIND,r=NONCE,p=PROOF", sha256Hash) {
			t.Errorf("sha256 %v: the right proof did not sign in", sha256Hash)
		}
		if scramExchange(t, creds, "n,,n=alice,r=abc", "c=CBIND,r=NONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", sha256Hash) {
			t.Errorf("sha256 %v: a made-up proof signed in", sha256Hash)
		}
	}
}

// scramExchange is one SCRAM exchange of the fuzz target; it reports
// whether the client signed in, having checked the server's answers.
func scramExchange(t *testing.T, creds storage.Credentials, first, final string, sha256Hash bool) bool {
	t.Helper()
	h, keys := sha1.New, creds.SHA1
	if sha256Hash {
		h, keys = sha256.New, creds.SHA256
	}
	a := fuzzAuthenticator(t, creds)
	st, err := a.scramFirst(h, false, first)
	if err != nil {
		checkSASLError(t, a, err)
		return false
	}
	if !strings.HasPrefix(st.serverFirst, "r="+st.nonce+",s=") || len(st.nonce) <= 24 {
		t.Fatalf("server-first-message %q for nonce %q", st.serverFirst, st.nonce)
	}
	final = strings.ReplaceAll(final, "NONCE", st.nonce)
	final = strings.ReplaceAll(final, "CBIND", base64.StdEncoding.EncodeToString([]byte(st.gs2Header)))
	if without, ok := strings.CutSuffix(final, ",p=PROOF"); ok {
		final = without + ",p=" + base64.StdEncoding.EncodeToString(scramProof(h, keys, st, without))
	}
	resp, err := a.scramFinal(h, st, final)
	if err != nil {
		checkSASLError(t, a, err)
		if a.user.String() != "" {
			t.Fatalf("failed, but %s is signed in", a.user)
		}
		return false
	}
	i := strings.LastIndex(final, ",p=")
	without, proof := final[:i], final[i+3:]
	want := base64.StdEncoding.EncodeToString(scramProof(h, keys, st, without))
	if subtle.ConstantTimeCompare([]byte(proof), []byte(want)) != 1 {
		t.Fatalf("accepted proof %q; the password gives %q", proof, want)
	}
	if a.user.String() != fuzzAccount {
		t.Fatalf("signed in as %q", a.user)
	}
	auth := []byte(st.clientBare + "," + st.serverFirst + "," + without)
	if sig := "v=" + base64.StdEncoding.EncodeToString(hmacSum(h, keys.ServerKey, auth)); string(resp) != sig {
		t.Fatalf("server-final-message %q, want %q", resp, sig)
	}
	return true
}

// scramProof is the client's proof for the client-final-message without
// its proof (RFC 5802 §3), from the stored keys: ClientKey is not stored,
// so it is recovered as the client would compute it, from the password.
func scramProof(h func() hash.Hash, keys storage.SCRAMKeys, st *scramState, without string) []byte {
	// The fuzz account's credentials are derived from fuzzPassword; derive
	// ClientKey again from it and the salt the server sent.
	_, salt, _ := strings.Cut(st.serverFirst, ",s=")
	salt, _, _ = strings.Cut(salt, ",i=")
	rawSalt, _ := base64.StdEncoding.DecodeString(salt)
	salted, _ := pbkdf2.Key(h, fuzzPassword, rawSalt, 2, h().Size())
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	auth := []byte(st.clientBare + "," + st.serverFirst + "," + without)
	sig := hmacSum(h, keys.StoredKey, auth)
	subtle.XORBytes(clientKey, clientKey, sig)
	return clientKey
}

// FuzzPLAIN runs SASL PLAIN (RFC 4616) on messages from the fuzzer: only
// the account's password signs in, and only as that account.
func FuzzPLAIN(f *testing.F) {
	f.Add([]byte("\x00alice\x00pencil"))
	f.Add([]byte("alice@example.com\x00alice\x00pencil"))
	f.Add([]byte("bob@example.com\x00alice\x00pencil"))
	f.Add([]byte("\x00ALICE\x00pencil"))
	f.Add([]byte("\x00alice\x00pencil\x00"))
	f.Add([]byte("\x00bob\x00pencil"))
	f.Add([]byte("\x00alice\x00\u212bpencil"))
	creds, err := NewCredentials(fuzzPassword, 2)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) == 0 {
			return // <auth/> without a response: the server asks for one
		}
		a := fuzzAuthenticator(t, creds)
		more, _, _, err := a.plain().Next(nil, msg, nil)
		if err != nil {
			checkSASLError(t, a, err)
			return
		}
		if more {
			t.Fatalf("PLAIN asked for more after %q", msg)
		}
		parts := strings.Split(string(msg), "\x00")
		if len(parts) != 3 {
			t.Fatalf("%q: not three parts, but signed in as %q", msg, a.user)
		}
		if user, err := a.account(parts[1]); a.user.String() != fuzzAccount || err != nil || !user.Equal(a.user) {
			t.Fatalf("%q signed in as %q", msg, a.user)
		}
		if p := parts[2]; p != fuzzPassword {
			// PRECIS OpaqueString may map another spelling onto the
			// password (NFC, non-ASCII spaces); it must then prepare to it.
			if prepared, err := precis.OpaqueString.String(p); err != nil || prepared != fuzzPassword {
				t.Fatalf("password %q accepted", p)
			}
		}
	})
}

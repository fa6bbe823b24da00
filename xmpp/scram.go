package xmpp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/text/secure/precis"
	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// DefaultIterations is the PBKDF2 iteration count for new credentials
// (RFC 7677 recommends at least 4096).
const DefaultIterations = 4096

// NewCredentials derives what an account stores from its password: a random
// salt, the iteration count, and the SCRAM StoredKey and ServerKey for SHA-1
// and SHA-256 (RFC 5802 §3). Neither the password nor the salted password is
// kept. The password is prepared with the PRECIS OpaqueString profile (RFC
// 8265), as SCRAM's SASLprep successor.
func NewCredentials(password string, iterations int) (storage.Credentials, error) {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("password: %w", err)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return storage.Credentials{}, err
	}
	c := storage.Credentials{Salt: salt, Iterations: iterations}
	c.SHA1, err = scramKeys(sha1.New, p, salt, iterations)
	if err != nil {
		return c, err
	}
	c.SHA256, err = scramKeys(sha256.New, p, salt, iterations)
	return c, err
}

func scramKeys(h func() hash.Hash, password string, salt []byte, iter int) (storage.SCRAMKeys, error) {
	salted, err := pbkdf2.Key(h, password, salt, iter, h().Size())
	if err != nil {
		return storage.SCRAMKeys{}, err
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return storage.SCRAMKeys{
		StoredKey: stored.Sum(nil),
		ServerKey: hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

// unknownCredentials are what an account that does not exist appears to
// have: a salt derived from its name under the server's secret, so that it
// is the same on every attempt, on every node and after a restart, as a real
// account's is; and the iteration count new accounts get.
func (s *Server) unknownCredentials(bare string) storage.Credentials {
	salt := hmacSum(sha256.New, s.authSecret, []byte("scram salt\x00"+bare))[:16]
	return storage.Credentials{Salt: salt, Iterations: s.SCRAMIterations}
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// authenticator is one stream's SASL state shared by its mechanisms: where to
// find credentials, what the TLS channel is, and who authenticated.
type authenticator struct {
	domain string
	// lookup finds an account's credentials by bare JID.
	lookup func(ctx context.Context, bare string) (storage.Credentials, error)
	// tokens checks app-issued tokens sent as PLAIN passwords; nil: none.
	tokens TokenVerifier
	// fail is called on every failed attempt, before the failure is sent; it
	// may sleep (the growing delay).
	fail func()
	// unknown makes up the credentials of an account that does not exist,
	// the same for every attempt, so that SCRAM's salt and iteration count
	// do not tell whether it does.
	unknown func(bare string) storage.Credentials
	// locked reports whether attempts on an account are refused without a
	// look at the password (Server.accountLocked); nil: never.
	locked func(bare string) bool
	// attempted is the existing account the last attempt was on, or "",
	// for counting failures per account.
	attempted string
	// tls is the stream's TLS state, nil on a plain connection.
	tls *tls.ConnectionState
	// plusOffered records that -PLUS mechanisms were advertised, so a client
	// that claims the server does not support binding ("y") is attacked.
	plusOffered bool
	// user is the authenticated bare JID after success.
	user jid.JID
	// reason says why the last attempt failed, for the log.
	reason string
	// mech is the mechanism of the current attempt, and metrics what
	// counts failures (nil: nothing).
	mech    string
	metrics Metrics
}

var errAuth = sasl.ErrAuthn

// failed records a wrong password or proof: it counts towards the address's
// failure limit and is answered after the growing delay. It returns
// sasl.ErrAuthn itself, unwrapped, because that exact value is what makes
// mellium answer <not-authorized/>.
func (a *authenticator) failed(reason string) error {
	a.reason = reason
	if a.metrics != nil {
		a.metrics.AuthFailed(a.mech, authReasonOf(reason))
	}
	if a.fail != nil {
		a.fail()
	}
	return errAuth
}

// refused fails an attempt that tested no password (a malformed message, a
// channel binding the client cannot do): not-authorized, but neither counted
// nor delayed, so that a client may go on to a mechanism that works. Unlike
// a wrong password, the reason is no secret: the <failure/> carries it as
// <text/> (RFC 6120 §6.4.5), for the client's log.
func (a *authenticator) refused(reason string) error {
	a.reason = reason
	if a.metrics != nil {
		a.metrics.AuthFailed(a.mech, AuthProtocol)
	}
	return saslRefusal{reason}
}

// unavailable fails an attempt that could not be decided because storage (or
// the token verifier's) did not answer: <temporary-auth-failure/> (RFC 6120
// §6.5.9), neither counted nor delayed, since the client did nothing wrong
// and an outage must not lock accounts or addresses out after it ends.
func (a *authenticator) unavailable(reason string) error {
	a.reason = reason
	a.attempted = ""
	if a.metrics != nil {
		a.metrics.AuthFailed(a.mech, AuthStorage)
	}
	return saslTemporary{reason}
}

// saslTemporary is the error of an attempt that could not be decided now. It
// is an errAuth, so that the client may try again on the same stream, but
// not errAuth itself, so that conn.sasl writes the <failure/>.
type saslTemporary struct{ reason string }

func (r saslTemporary) Error() string { return "sasl: temporary failure: " + r.reason }
func (r saslTemporary) Unwrap() error { return errAuth }

// saslRefusal is the error of an attempt refused before any password was
// checked. It is an errAuth, but not errAuth itself, so that mellium
// leaves the <failure/> to conn.sasl, which adds the reason.
type saslRefusal struct{ reason string }

func (r saslRefusal) Error() string { return "sasl: refused: " + r.reason }
func (r saslRefusal) Unwrap() error { return errAuth }

// Why a channel binding is refused (RFC 5802 §6, RFC 9266). TLS 1.3 has
// no tls-unique (RFC 8446 §C.5), so tls-exporter is the only type there.
const (
	reasonCBType = "channel binding type %s is not supported: only tls-exporter (RFC 9266); tls-unique does not exist in TLS 1.3"
	reasonCBNone = "a -PLUS mechanism needs channel binding: send p=tls-exporter"
	reasonCBDown = "the client says the server does not support channel binding, but it offered -PLUS mechanisms with tls-exporter: refused as a possible downgrade attack (RFC 5802 §6); use a -PLUS mechanism with tls-exporter, or one without channel binding support (gs2 flag n)"
)

// account turns a SASL authentication identity into a bare JID on our domain.
func (a *authenticator) account(username string) (jid.JID, error) {
	return jid.New(username, a.domain, "")
}

// mechanisms returns the mechanisms offered on this stream, strongest first.
func (a *authenticator) mechanisms(secure bool) []sasl.Mechanism {
	var ms []sasl.Mechanism
	if a.tls != nil && a.tls.Version >= tls.VersionTLS13 {
		a.plusOffered = true
		ms = append(ms, a.scram("SCRAM-SHA-256-PLUS", sha256.New, true), a.scram("SCRAM-SHA-1-PLUS", sha1.New, true))
	}
	ms = append(ms, a.scram("SCRAM-SHA-256", sha256.New, false), a.scram("SCRAM-SHA-1", sha1.New, false))
	if secure {
		ms = append(ms, a.plain())
	}
	return ms
}

type scramState struct {
	gs2Header   string
	cbData      []byte
	clientBare  string
	serverFirst string
	nonce       string
	keys        storage.SCRAMKeys
	user        jid.JID
	known       bool
}

// scram is the server side of SCRAM (RFC 5802, RFC 7677) verifying against
// StoredKey and ServerKey, with tls-exporter channel binding (RFC 9266) for the
// -PLUS variants.
func (a *authenticator) scram(name string, h func() hash.Hash, plus bool) sasl.Mechanism {
	next := func(n *sasl.Negotiator, msg []byte, cache interface{}) (bool, []byte, interface{}, error) {
		a.mech = name
		st, _ := cache.(*scramState)
		if st == nil {
			if len(msg) == 0 {
				// <auth/> with no initial response: ask for it.
				return true, nil, nil, nil
			}
			st, err := a.scramFirst(h, plus, string(msg))
			if err != nil {
				return false, nil, nil, err
			}
			return true, []byte(st.serverFirst), st, nil
		}
		resp, err := a.scramFinal(h, st, string(msg))
		if err != nil {
			return false, nil, nil, err
		}
		return false, resp, nil, nil
	}
	return sasl.Mechanism{
		Name:  name,
		Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) { return true, nil, nil, nil },
		Next:  next,
	}
}

func (a *authenticator) scramFirst(h func() hash.Hash, plus bool, msg string) (*scramState, error) {
	// gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, a.refused("malformed client-first-message")
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, a.refused("malformed client-first-message")
	}
	st := &scramState{gs2Header: flag + "," + authz + ",", clientBare: bare}
	switch {
	case plus:
		if typ, ok := strings.CutPrefix(flag, "p="); ok && typ != "tls-exporter" {
			typ = typ[:min(len(typ), 40)]
			return nil, a.refused(fmt.Sprintf(reasonCBType, strconv.Quote(typ)))
		}
		if flag != "p=tls-exporter" || a.tls == nil {
			return nil, a.refused(reasonCBNone)
		}
		cb, err := a.tls.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			return nil, a.refused("no channel binding data")
		}
		st.cbData = cb
	case flag == "n":
	case flag == "y":
		if a.plusOffered {
			return nil, a.refused(reasonCBDown)
		}
	default:
		// p=... with a mechanism without -PLUS (RFC 5802 §6).
		return nil, a.refused("channel binding is only done with a -PLUS mechanism")
	}
	var username, cnonce string
	for i, field := range strings.Split(bare, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch {
		case i == 0 && k == "m":
			return nil, a.refused("mandatory extension")
		case k == "n":
			username = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(v)
		case k == "r":
			cnonce = v
		}
	}
	if username == "" || cnonce == "" {
		return nil, a.refused("missing username or nonce")
	}
	user, err := a.account(username)
	if err != nil {
		return nil, a.refused("bad username")
	}
	if authz != "" && authz != "a="+user.String() {
		return nil, a.refused("authorization identity differs")
	}
	st.user = user
	a.attempted = ""
	creds, err := a.lookup(context.Background(), user.String())
	switch {
	case err == nil:
		st.known = true
		a.attempted = user.String()
		if h().Size() == sha1.Size {
			st.keys = creds.SHA1
		} else {
			st.keys = creds.SHA256
		}
	case errors.Is(err, storage.ErrNotFound):
		// Carry on with made-up values so that the exchange does not tell
		// whether the account exists.
		creds = a.unknown(user.String())
	default:
		return nil, a.unavailable("storage: " + err.Error())
	}
	snonce := make([]byte, 18)
	rand.Read(snonce)
	st.nonce = cnonce + base64.RawStdEncoding.EncodeToString(snonce)
	st.serverFirst = "r=" + st.nonce + ",s=" + base64.StdEncoding.EncodeToString(creds.Salt) + ",i=" + strconv.Itoa(creds.Iterations)
	return st, nil
}

func (a *authenticator) scramFinal(h func() hash.Hash, st *scramState, msg string) ([]byte, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, a.refused("missing proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	var cb, nonce string
	for _, field := range strings.Split(withoutProof, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "c":
			cb = v // a "c" without "=" once panicked here (FuzzSCRAM)
		case "r":
			nonce = v
		}
	}
	want := base64.StdEncoding.EncodeToString(append([]byte(st.gs2Header), st.cbData...))
	if subtle.ConstantTimeCompare([]byte(cb), []byte(want)) != 1 {
		return nil, a.refused("channel binding mismatch")
	}
	if nonce != st.nonce {
		return nil, a.refused("nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != h().Size() || !st.known {
		return nil, a.failed("bad proof")
	}
	if a.locked != nil && a.locked(st.user.String()) {
		// Answered as a wrong password would be, after the same delay:
		// the guess is not checked, and nothing tells the account apart.
		return nil, a.failed("account locked after failures from many addresses")
	}
	authMessage := []byte(st.clientBare + "," + st.serverFirst + "," + withoutProof)
	clientKey := hmacSum(h, st.keys.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, proof)
	stored := h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), st.keys.StoredKey) {
		return nil, a.failed("bad proof")
	}
	a.user = st.user
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSum(h, st.keys.ServerKey, authMessage))), nil
}

// plain is SASL PLAIN (RFC 4616), offered only on encrypted streams. The
// password is checked by deriving the SHA-256 StoredKey from it, or, when it
// is shaped like a token and tokens are on, by a.tokens; a bad token is a
// failure like a bad password, and there is no second try as a password.
func (a *authenticator) plain() sasl.Mechanism {
	return sasl.Mechanism{
		Name:  "PLAIN",
		Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) { return true, nil, nil, nil },
		Next: func(n *sasl.Negotiator, msg []byte, cache interface{}) (bool, []byte, interface{}, error) {
			a.mech = "PLAIN"
			if len(msg) == 0 && cache == nil {
				return true, nil, true, nil
			}
			parts := bytes.Split(msg, []byte{0})
			if len(parts) != 3 {
				return false, nil, nil, a.refused("malformed PLAIN message")
			}
			user, err := a.account(string(parts[1]))
			if err != nil {
				return false, nil, nil, a.refused("bad username")
			}
			if len(parts[0]) > 0 && string(parts[0]) != user.String() {
				return false, nil, nil, a.refused("authorization identity differs")
			}
			a.attempted = ""
			if a.tokens != nil && tokenShaped(string(parts[2])) {
				if err := a.tokens.VerifyToken(context.Background(), user.String(), string(parts[2])); err != nil {
					if errors.Is(err, ErrTokenUnverified) {
						return false, nil, nil, a.unavailable("token: " + err.Error())
					}
					return false, nil, nil, a.failed("token: " + err.Error())
				}
				a.user = user
				return false, nil, nil, nil
			}
			creds, err := a.lookup(context.Background(), user.String())
			known := err == nil
			if !known {
				if !errors.Is(err, storage.ErrNotFound) {
					return false, nil, nil, a.unavailable("storage: " + err.Error())
				}
				// Derive the keys anyway, so that the time taken does not
				// tell whether the account exists.
				creds = a.unknown(user.String())
			}
			password, err := precis.OpaqueString.String(string(parts[2]))
			if err != nil {
				return false, nil, nil, a.failed("bad password")
			}
			keys, err := scramKeys(sha256.New, password, creds.Salt, creds.Iterations)
			if !known {
				return false, nil, nil, a.failed("unknown account")
			}
			a.attempted = user.String()
			if a.locked != nil && a.locked(user.String()) {
				return false, nil, nil, a.failed("account locked after failures from many addresses")
			}
			if err != nil || !hmac.Equal(keys.StoredKey, creds.SHA256.StoredKey) {
				return false, nil, nil, a.failed("bad password")
			}
			a.user = user
			return false, nil, nil, nil
		},
	}
}

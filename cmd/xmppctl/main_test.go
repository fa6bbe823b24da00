package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/sqlite"
)

// result is what one xmppctl invocation produced.
type result struct {
	code   int
	stdout string
	err    error
}

// ctl runs xmppctl in-process with args, feeding stdin.
func ctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out bytes.Buffer
	code, err := run(context.Background(), args, strings.NewReader(stdin), &out)
	return result{code: code, stdout: out.String(), err: err}
}

// check asserts the exit status and that want appears in stdout (for 0) or
// in the error (otherwise).
func (r result) check(t *testing.T, step string, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d (err %v, stdout %q), want %d", step, r.code, r.err, r.stdout, code)
	}
	if code == 0 {
		if r.err != nil {
			t.Fatalf("%s: exit 0 with error %v", step, r.err)
		}
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("%s: stdout %q, want it to contain %q", step, r.stdout, want)
		}
		return
	}
	if r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Fatalf("%s: error %v, want one containing %q", step, r.err, want)
	}
}

func TestUserCommands(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string // in stdout for 0, in the error otherwise
	}{
		{"add", "", []string{"user", "add", "alice@localhost", "pw1"}, 0, "created alice@localhost"},
		{"add again", "", []string{"user", "add", "alice@localhost", "pw2"}, 1, "already exists"},
		{"add normalises", "", []string{"user", "add", "Carol@LOCALHOST", "pw"}, 0, "created carol@localhost"},
		{"add from stdin", "from stdin\n", []string{"user", "add", "bob@localhost"}, 0, "created bob@localhost"},
		{"add empty stdin", "", []string{"user", "add", "dave@localhost"}, 1, "no password"},
		{"add empty password", "\n", []string{"user", "add", "dave@localhost"}, 1, "empty"},
		{"add other domain", "", []string{"user", "add", "eve@example.com", "pw"}, 1, "not on the served domain"},
		{"add with resource", "", []string{"user", "add", "eve@localhost/phone", "pw"}, 1, "not an account address"},
		{"add domain only", "", []string{"user", "add", "localhost", "pw"}, 1, "not an account address"},
		{"add invalid", "", []string{"user", "add", "@@", "pw"}, 1, "not a valid JID"},
		{"passwd", "", []string{"user", "passwd", "alice@localhost", "pw3"}, 0, "password changed for alice@localhost"},
		{"passwd missing", "", []string{"user", "passwd", "nobody@localhost", "pw"}, 1, "does not exist"},
		{"passwd other domain", "", []string{"user", "passwd", "alice@example.com", "pw"}, 1, "not on the served domain"},
		{"del", "", []string{"user", "del", "carol@localhost"}, 0, "deleted carol@localhost"},
		{"del again", "", []string{"user", "del", "carol@localhost"}, 1, "does not exist"},
		{"del with resource", "", []string{"user", "del", "alice@localhost/r"}, 1, "not an account address"},
		{"no command", "", nil, 2, "usage"},
		{"unknown command", "", []string{"sessions", "list"}, 2, "usage"},
		{"user alone", "", []string{"user"}, 2, "usage"},
		{"unknown user command", "", []string{"user", "rename", "a@localhost"}, 2, "usage"},
		{"add without JID", "", []string{"user", "add"}, 2, "usage"},
		{"add too many", "", []string{"user", "add", "x@localhost", "a", "b"}, 2, "usage"},
		{"del with password", "", []string{"user", "del", "alice@localhost", "pw"}, 2, "usage"},
		{"unknown flag", "", []string{"-nope", "user", "list"}, 2, "usage"},
	}
	for _, s := range steps {
		ctl(t, s.stdin, append(d, s.args...)...).check(t, s.name, s.code, s.want)
	}

	r := ctl(t, "", append(d, "user", "list")...)
	r.check(t, "list", 0, "")
	if want := "alice@localhost\nbob@localhost\n"; r.stdout != want {
		t.Fatalf("list printed %q, want %q", r.stdout, want)
	}

	// The passwords that were set are the ones stored: passwd replaced
	// alice's, and bob's came from stdin without its newline.
	st := openSQLite(t, data)
	for user, pw := range map[string]string{"alice@localhost": "pw3", "bob@localhost": "from stdin"} {
		c, err := st.Credentials(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if !matches(t, c, pw) {
			t.Errorf("%s: stored credentials do not verify %q", user, pw)
		}
	}
}

func TestListEmpty(t *testing.T) {
	r := ctl(t, "", "-data", newData(t), "user", "list")
	r.check(t, "list", 0, "")
	if r.stdout != "" {
		t.Fatalf("list on a new store printed %q", r.stdout)
	}
}

// TestNoDatabase runs xmppctl where there is no database, as from another
// directory than the server's: it must say where it looked and create
// nothing, for every command that opens the store.
func TestNoDatabase(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"user", "list"},
		{"user", "add", "alice@localhost", "pw"},
		{"user", "passwd", "alice@localhost", "pw"},
		{"group", "list"},
		{"api-token", "list"},
	} {
		want := "no database at " + filepath.Join(dir, "data", "xmppd.db")
		ctl(t, "", args...).check(t, strings.Join(args, " "), 1, want)
	}
	other := filepath.Join(t.TempDir(), "elsewhere")
	ctl(t, "", "-data", other, "user", "list").check(t, "-data", 1, "no database at "+filepath.Join(other, "xmppd.db"))
	for _, p := range []string{filepath.Join(dir, "data"), other} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after xmppctl (err %v); it should create nothing", p, err)
		}
	}
}

// newData is a data directory with an empty database in it, as xmppd
// leaves it at its first start.
func newData(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCredentialsNotPassword checks what is stored: RFC 5802 keys for both
// hashes with a random salt, and nothing that contains the password.
func TestCredentialsNotPassword(t *testing.T) {
	data := newData(t)
	const password = "correct horse battery staple"
	ctl(t, "", "-data", data, "user", "add", "alice@localhost", password).check(t, "add", 0, "created")
	ctl(t, "", "-data", data, "user", "add", "bob@localhost", password).check(t, "add", 0, "created")

	st := openSQLite(t, data)
	ctx := context.Background()
	alice, err := st.Credentials(ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := st.Credentials(ctx, "bob@localhost")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]storage.Credentials{"alice": alice, "bob": bob} {
		if len(c.Salt) != 16 {
			t.Errorf("%s: salt is %d bytes, want 16", name, len(c.Salt))
		}
		if c.Iterations != 4096 {
			t.Errorf("%s: iterations %d, want 4096", name, c.Iterations)
		}
		fields := map[string][]byte{
			"salt":              c.Salt,
			"sha1 stored key":   c.SHA1.StoredKey,
			"sha1 server key":   c.SHA1.ServerKey,
			"sha256 stored key": c.SHA256.StoredKey,
			"sha256 server key": c.SHA256.ServerKey,
		}
		for f, b := range fields {
			want := 20
			if strings.HasPrefix(f, "sha256") {
				want = 32
			} else if f == "salt" {
				want = 16
			}
			if len(b) != want {
				t.Errorf("%s: %s is %d bytes, want %d", name, f, len(b), want)
			}
			if bytes.Contains(b, []byte(password)) {
				t.Errorf("%s: %s contains the password", name, f)
			}
		}
		if !matches(t, c, password) {
			t.Errorf("%s: stored keys do not verify the password", name)
		}
	}
	if bytes.Equal(alice.Salt, bob.Salt) || bytes.Equal(alice.SHA256.StoredKey, bob.SHA256.StoredKey) {
		t.Error("two accounts with the same password share a salt or key")
	}

	// Nor is it anywhere in the database files, WAL included.
	st.Close()
	files, err := filepath.Glob(filepath.Join(data, "xmppd.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no database files in %s (%v)", data, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s contains the password", f)
		}
	}
}

// TestPostgres runs xmppctl on a configuration file that selects Postgres.
func TestPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	yaml := "domain: example.org\nstorage:\n  backend: postgres\n  postgres_dsn: " + strconv.Quote(dsn) + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := []string{"-config", cfg}
	ctl(t, "", append(c, "user", "add", "zed@example.org", "pw")...).check(t, "add", 0, "created zed@example.org")
	ctl(t, "", append(c, "user", "add", "amy@example.org", "pw")...).check(t, "add", 0, "created amy@example.org")
	ctl(t, "", append(c, "user", "add", "zed@example.org", "pw")...).check(t, "add again", 1, "already exists")
	ctl(t, "", append(c, "user", "add", "bob@localhost", "pw")...).check(t, "add other domain", 1, "not on the served domain")
	ctl(t, "", append(c, "user", "passwd", "amy@example.org", "pw2")...).check(t, "passwd", 0, "password changed")
	r := ctl(t, "", append(c, "user", "list")...)
	r.check(t, "list", 0, "")
	if want := "amy@example.org\nzed@example.org\n"; r.stdout != want {
		t.Fatalf("list printed %q, want %q", r.stdout, want)
	}
	ctl(t, "", append(c, "user", "del", "zed@example.org")...).check(t, "del", 0, "deleted")
	ctl(t, "", append(c, "user", "del", "zed@example.org")...).check(t, "del again", 1, "does not exist")
}

func TestBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	if err := os.WriteFile(cfg, []byte("storage:\n  backend: postgres\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(t, "", "-config", cfg, "user", "list").check(t, "postgres without DSN", 1, "postgres_dsn")
	ctl(t, "", "-config", filepath.Join(t.TempDir(), "missing.yaml"), "user", "list").check(t, "missing file", 1, "missing.yaml")
}

func openSQLite(t *testing.T, data string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(data, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// matches reports whether c's SCRAM-SHA-256 StoredKey is the one password
// derives (RFC 5802 §3): H(HMAC(SaltedPassword, "Client Key")).
func matches(t *testing.T, c storage.Credentials, password string) bool {
	t.Helper()
	h := func() hash.Hash { return sha256.New() }
	salted, err := pbkdf2.Key(h, password, c.Salt, c.Iterations, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	stored := sha256.Sum256(mac.Sum(nil))
	return hmac.Equal(stored[:], c.SHA256.StoredKey)
}

// TestTokenMint mints tokens with the secret from the configuration, inline
// or from a file, and checks them with the verifier the server uses.
func TestTokenMint(t *testing.T) {
	const secret = "an app secret of at least 32 bytes"
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inline := []string{"-config", write("inline.yaml", "domain: example.org\nauth:\n  tokens:\n    secret: "+strconv.Quote(secret)+"\n")}
	fromFile := []string{"-config", write("file.yaml", "domain: example.org\nauth:\n  tokens:\n    secret_file: "+
		strconv.Quote(write("secret", secret+"\n"))+"\n    audience: chat.example.org\n")}
	none := []string{"-config", write("none.yaml", "domain: example.org\n")}
	short := []string{"-config", write("short.yaml", "domain: example.org\nauth:\n  tokens:\n    secret_file: "+
		strconv.Quote(write("short", "too short\n"))+"\n")}

	verify := func(t *testing.T, token, aud string) string {
		t.Helper()
		v := apptoken.Verifier{Secret: []byte(secret), Audience: aud}
		sub, err := v.Verify(strings.TrimSuffix(token, "\n"), time.Now())
		if err != nil {
			t.Fatalf("minted token does not verify: %v", err)
		}
		return sub
	}
	for _, tc := range []struct {
		name string
		args []string
		aud  string        // the audience the token must be for
		ttl  time.Duration // how long it must be valid, roughly
	}{
		{"inline secret", append(inline, "token", "mint", "Alice@example.org"), "example.org", time.Hour},
		{"secret file and audience", append(fromFile, "token", "mint", "alice@example.org"), "chat.example.org", time.Hour},
		{"flags after the JID", append(inline, "token", "mint", "alice@example.org", "-ttl", "5m", "-audience", "app"), "app", 5 * time.Minute},
		{"flags before the JID", append(inline, "token", "mint", "-ttl=90s", "alice@example.org"), "example.org", 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, "", tc.args...)
			r.check(t, tc.name, 0, ".")
			if strings.Count(r.stdout, "\n") != 1 || strings.Count(r.stdout, ".") != 2 {
				t.Fatalf("stdout %q is not one token on one line", r.stdout)
			}
			if sub := verify(t, r.stdout, tc.aud); sub != "alice@example.org" {
				t.Fatalf("token for %q", sub)
			}
			v := apptoken.Verifier{Secret: []byte(secret), Audience: tc.aud}
			if _, err := v.Verify(strings.TrimSpace(r.stdout), time.Now().Add(tc.ttl+time.Second)); err == nil {
				t.Fatalf("token still valid after %v", tc.ttl)
			}
			if _, err := v.Verify(strings.TrimSpace(r.stdout), time.Now().Add(tc.ttl-5*time.Second)); err != nil {
				t.Fatalf("token expired before %v: %v", tc.ttl, err)
			}
		})
	}

	for _, s := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no secret", append(none, "token", "mint", "alice@example.org"), 1, "no token secret configured"},
		{"short secret file", append(short, "token", "mint", "alice@example.org"), 1, "at least 32"},
		{"other domain", append(inline, "token", "mint", "alice@example.com"), 1, "not on the served domain"},
		{"full JID", append(inline, "token", "mint", "alice@example.org/phone"), 1, "not an account address"},
		{"no JID", append(inline, "token", "mint"), 2, "usage"},
		{"two JIDs", append(inline, "token", "mint", "alice@example.org", "bob@example.org"), 2, "usage"},
		{"bad ttl", append(inline, "token", "mint", "alice@example.org", "-ttl", "soon"), 2, "usage"},
		{"zero ttl", append(inline, "token", "mint", "alice@example.org", "-ttl", "0s"), 2, "-ttl must be positive"},
		{"unknown flag", append(inline, "token", "mint", "-scope", "x", "alice@example.org"), 2, "usage"},
		{"unknown token command", append(inline, "token", "revoke", "alice@example.org"), 2, "usage"},
		{"token alone", append(inline, "token"), 2, "usage"},
	} {
		ctl(t, "", s.args...).check(t, s.name, s.code, s.want)
	}
}

// TestTokenSecretConfig checks what the configuration accepts as a secret.
func TestTokenSecretConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("an app secret of at least 32 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"short inline secret", "tokens:\n    secret: short", "at least 32"},
		{"both set", "tokens:\n    secret: an app secret of at least 32 bytes\n    secret_file: " + strconv.Quote(secretFile), "both set"},
		{"missing file", "tokens:\n    secret_file: " + strconv.Quote(filepath.Join(dir, "missing")), "missing"},
	} {
		cfg := filepath.Join(dir, "xmppd.yaml")
		if err := os.WriteFile(cfg, []byte("domain: example.org\nauth:\n  "+tc.yaml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ctl(t, "", "-config", cfg, "token", "mint", "alice@example.org").check(t, tc.name, 1, tc.want)
	}
}

func TestGroupCommands(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	steps := []struct {
		name string
		args []string
		code int
		want string // in stdout for 0, in the error otherwise
	}{
		{"add team", []string{"group", "add", "eng", "-name", "Engineering"}, 0, "created team eng"},
		{"add team default name", []string{"group", "add", "ops"}, 0, "created team ops"},
		{"add project", []string{"group", "add", "apollo", "-kind", "project", "-name", "Apollo", "-parent", "eng"}, 0, "created project apollo"},
		{"add flags first", []string{"group", "add", "-kind=project", "loose"}, 0, "created project loose"},
		{"add again", []string{"group", "add", "eng"}, 1, "group eng already exists"},
		{"add parent missing", []string{"group", "add", "p2", "-kind", "project", "-parent", "nope"}, 1, "team nope does not exist"},
		{"add parent a project", []string{"group", "add", "p2", "-kind", "project", "-parent", "apollo"}, 1, "apollo is a project, not a team"},
		{"add team with parent", []string{"group", "add", "t2", "-parent", "eng"}, 2, "-parent is only for projects"},
		{"add bad kind", []string{"group", "add", "x", "-kind", "room"}, 2, "-kind must be team or project"},
		{"add empty ID", []string{"group", "add", ""}, 2, "empty"},
		{"add without ID", []string{"group", "add", "-kind", "team"}, 2, "usage"},
		{"add two IDs", []string{"group", "add", "a", "b"}, 2, "usage"},
		{"add unknown flag", []string{"group", "add", "x", "-colour", "red"}, 2, "usage"},
		{"add-member", []string{"group", "add-member", "eng", "alice@localhost"}, 0, "added alice@localhost to eng"},
		{"add-member normalises", []string{"group", "add-member", "eng", "Bob@LOCALHOST"}, 0, "added bob@localhost to eng"},
		{"add-member to project", []string{"group", "add-member", "apollo", "bob@localhost"}, 0, "added bob@localhost to apollo"},
		{"add-member again", []string{"group", "add-member", "eng", "alice@localhost"}, 1, "alice@localhost is already a member of eng"},
		{"add-member missing group", []string{"group", "add-member", "nope", "alice@localhost"}, 1, "group nope does not exist"},
		{"add-member other domain", []string{"group", "add-member", "eng", "eve@example.com"}, 1, "not on the served domain"},
		{"add-member with resource", []string{"group", "add-member", "eng", "eve@localhost/phone"}, 1, "not an account address"},
		{"add-member invalid", []string{"group", "add-member", "eng", "@@"}, 1, "not a valid JID"},
		{"add-member no JID", []string{"group", "add-member", "eng"}, 2, "usage"},
		{"add-member carol", []string{"group", "add-member", "ops", "carol@localhost"}, 0, "added carol@localhost to ops"},
		{"remove-member", []string{"group", "remove-member", "ops", "carol@localhost"}, 0, "removed carol@localhost from ops"},
		{"remove-member again", []string{"group", "remove-member", "ops", "carol@localhost"}, 1, "carol@localhost is not a member of ops"},
		{"remove-member other domain", []string{"group", "remove-member", "ops", "carol@example.com"}, 1, "not on the served domain"},
		{"remove-member too many", []string{"group", "remove-member", "ops", "carol@localhost", "x"}, 2, "usage"},
		{"members missing", []string{"group", "members", "nope"}, 1, "group nope does not exist"},
		{"members no ID", []string{"group", "members"}, 2, "usage"},
		{"del", []string{"group", "del", "loose"}, 0, "deleted group loose"},
		{"del again", []string{"group", "del", "loose"}, 1, "group loose does not exist"},
		{"del no ID", []string{"group", "del"}, 2, "usage"},
		{"list with argument", []string{"group", "list", "eng"}, 2, "usage"},
		{"group alone", []string{"group"}, 2, "usage"},
		{"unknown group command", []string{"group", "rename", "eng"}, 2, "usage"},
	}
	for _, s := range steps {
		ctl(t, "", append(d, s.args...)...).check(t, s.name, s.code, s.want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "list"}, "apollo\tproject\tApollo\teng\neng\tteam\tEngineering\t\nops\tteam\tops\t\n"},
		{[]string{"group", "members", "eng"}, "alice@localhost\nbob@localhost\n"},
		{[]string{"group", "members", "ops"}, ""},
	} {
		r := ctl(t, "", append(d, c.args...)...)
		r.check(t, strings.Join(c.args, " "), 0, "")
		if r.stdout != c.want {
			t.Fatalf("%s printed %q, want %q", strings.Join(c.args, " "), r.stdout, c.want)
		}
	}

	// What the commands did is what the store holds: the server sees it.
	st := openSQLite(t, data)
	shared, err := st.CoMembers(context.Background(), "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(shared) != 1 || shared[0].JID != "bob@localhost" || !slices.Equal(shared[0].Groups, []string{"Engineering"}) {
		t.Fatalf("alice's co-members = %+v, want bob in Engineering", shared)
	}

	// Deleting a team deletes its memberships, not its projects.
	ctl(t, "", append(d, "group", "del", "eng")...).check(t, "del team", 0, "deleted group eng")
	r := ctl(t, "", append(d, "group", "list")...)
	r.check(t, "list after del", 0, "")
	if want := "apollo\tproject\tApollo\t\nops\tteam\tops\t\n"; r.stdout != want {
		t.Fatalf("list after deleting eng printed %q, want %q", r.stdout, want)
	}
}

// TestGroupPostgres runs the group commands on a configuration file that
// selects Postgres.
func TestGroupPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	yaml := "domain: example.org\nstorage:\n  backend: postgres\n  postgres_dsn: " + strconv.Quote(dsn) + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := []string{"-config", cfg}
	ctl(t, "", append(c, "group", "add", "eng", "-name", "Engineering")...).check(t, "add", 0, "created team eng")
	ctl(t, "", append(c, "group", "add", "apollo", "-kind", "project", "-parent", "eng")...).check(t, "add project", 0, "created project apollo")
	ctl(t, "", append(c, "group", "add", "eng")...).check(t, "add again", 1, "already exists")
	ctl(t, "", append(c, "group", "add-member", "eng", "zed@example.org")...).check(t, "add-member", 0, "added zed@example.org to eng")
	ctl(t, "", append(c, "group", "add-member", "eng", "amy@example.org")...).check(t, "add-member", 0, "added amy@example.org to eng")
	ctl(t, "", append(c, "group", "add-member", "eng", "bob@localhost")...).check(t, "add-member other domain", 1, "not on the served domain")
	r := ctl(t, "", append(c, "group", "members", "eng")...)
	r.check(t, "members", 0, "")
	if want := "amy@example.org\nzed@example.org\n"; r.stdout != want {
		t.Fatalf("members printed %q, want %q", r.stdout, want)
	}
	r = ctl(t, "", append(c, "group", "list")...)
	r.check(t, "list", 0, "")
	if want := "apollo\tproject\tapollo\teng\neng\tteam\tEngineering\t\n"; r.stdout != want {
		t.Fatalf("list printed %q, want %q", r.stdout, want)
	}
	ctl(t, "", append(c, "group", "remove-member", "eng", "zed@example.org")...).check(t, "remove-member", 0, "removed")
	ctl(t, "", append(c, "group", "del", "eng")...).check(t, "del", 0, "deleted group eng")
	ctl(t, "", append(c, "group", "members", "eng")...).check(t, "members of deleted", 1, "does not exist")
}

// TestUserImport creates accounts in bulk from stdin; bad lines are reported
// with their numbers, and the good ones are still created with their own
// passwords.
func TestUserImport(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	ctl(t, "", append(d, "user", "add", "dora@localhost", "old")...).check(t, "add", 0, "created")
	in := "ann@localhost pass one\n\nben@localhost two\nnot a jid@@ x\ncid@localhost\ndora@localhost new\n"
	r := ctl(t, in, append(d, "user", "import")...)
	r.check(t, "import", 1, "3 of 5 lines failed")
	for _, want := range []string{"line 4:", "line 5: no password for cid@localhost", "line 6: dora@localhost already exists", "created 2 accounts"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("import printed %q, want a line with %q", r.stdout, want)
		}
	}
	ctl(t, "", append(d, "user", "import", "extra")...).check(t, "import with argument", 2, "usage")
	st := openSQLite(t, data)
	for user, pw := range map[string]string{"ann@localhost": "pass one", "ben@localhost": "two", "dora@localhost": "old"} {
		c, err := st.Credentials(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if !matches(t, c, pw) {
			t.Errorf("%s: stored credentials do not verify %q", user, pw)
		}
	}
	r = ctl(t, "", append(d, "user", "list")...)
	if strings.Contains(r.stdout, "cid@") {
		t.Errorf("a line without a password created an account: %q", r.stdout)
	}
}

// TestRoomCommands creates the two kinds of room, lists and deletes them;
// the stored configuration is the kind's.
func TestRoomCommands(t *testing.T) {
	data := newData(t)
	d := []string{"-data", data}
	steps := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"group", []string{"room", "create", "design", "-name", "Design", "-owner", "ann@localhost", "-member", "bob@localhost", "-member", "cid@localhost"}, 0, "created group design@conference.localhost"},
		{"chat", []string{"room", "create", "lounge@conference.localhost", "-kind", "chat", "-max", "50"}, 0, "created chat lounge@conference.localhost"},
		{"again", []string{"room", "create", "design"}, 1, "already exists"},
		{"bad kind", []string{"room", "create", "x", "-kind", "party"}, 2, "usage"},
		{"other service", []string{"room", "create", "x@conference.example.com"}, 1, "not a room on conference.localhost"},
		{"bad member", []string{"room", "create", "y", "-member", "bob@example.com"}, 1, "not on the served domain"},
		{"list", []string{"room", "list"}, 0, "design@conference.localhost\tgroup\tDesign\nlounge@conference.localhost\tchat\t\n"},
		{"del", []string{"room", "del", "lounge"}, 0, "deleted room lounge@conference.localhost"},
		{"del again", []string{"room", "del", "lounge"}, 1, "does not exist"},
		{"unknown", []string{"room", "rename", "x"}, 2, "usage"},
	}
	for _, s := range steps {
		r := ctl(t, "", append(d, s.args...)...)
		r.check(t, s.name, s.code, s.want)
		if s.name == "list" && r.stdout != s.want {
			t.Errorf("list printed %q, want %q", r.stdout, s.want)
		}
	}
	st := openSQLite(t, data)
	r, err := st.Room(context.Background(), "design@conference.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Config.Persistent || !r.Config.MembersOnly || r.Config.WhoIs != "anyone" || r.Config.Public {
		t.Errorf("a group's configuration: %+v", r.Config)
	}
	affs, err := st.Affiliations(context.Background(), "design@conference.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(affs) != 3 || affs[0].JID != "ann@localhost" || affs[0].Affiliation != "owner" || affs[1].Affiliation != "member" {
		t.Errorf("affiliations: %+v", affs)
	}
}

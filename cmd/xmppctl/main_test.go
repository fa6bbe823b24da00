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
	"strconv"
	"strings"
	"testing"

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
	data := t.TempDir()
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
		{"not user", "", []string{"room", "list"}, 2, "usage"},
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
	r := ctl(t, "", "-data", t.TempDir(), "user", "list")
	r.check(t, "list", 0, "")
	if r.stdout != "" {
		t.Fatalf("list on a new store printed %q", r.stdout)
	}
}

// TestCredentialsNotPassword checks what is stored: RFC 5802 keys for both
// hashes with a random salt, and nothing that contains the password.
func TestCredentialsNotPassword(t *testing.T) {
	data := t.TempDir()
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

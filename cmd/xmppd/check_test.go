package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// checkResult is what xmppd -check said.
type checkResult struct {
	code   int
	out    string
	stderr string
}

// has reports whether a finding line starts with mark ("ok", "WARN",
// "FAIL") for what and contains text.
func (r checkResult) has(mark, what, text string) bool {
	re := regexp.MustCompile(`(?m)^(?:` + mark + `) +` + what + `: +.*` + regexp.QuoteMeta(text))
	return re.MatchString(r.out)
}

// check runs xmppd -check with the configuration file cfg (written in a
// temporary directory, "" for none) and the data directory data.
func check(t *testing.T, data, cfg string, args ...string) checkResult {
	t.Helper()
	a := []string{"-check", "-data", data}
	if cfg != "" {
		path := filepath.Join(t.TempDir(), "xmppd.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		a = append(a, "-config", path)
	}
	var r checkResult
	r.code, r.out, r.stderr = runXmppd(t, append(a, args...)...)
	t.Logf("xmppd %q: status %d\n%s%s", a, r.code, r.out, r.stderr)
	return r
}

// expect fails the test unless the check ended with status code and its
// verdict line starts with verdict.
func (r checkResult) expect(t *testing.T, code int, verdict string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != code || !strings.HasPrefix(lines[len(lines)-1], verdict) {
		t.Errorf("status %d, verdict %q; want %d and %q", r.code, lines[len(lines)-1], code, verdict)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q, want nothing (the verdict is on stdout)", r.stderr)
	}
}

// TestCheckDefaults: with no file and nothing on disk the server can start;
// the certificate it will make is reported, and nothing is created.
func TestCheckDefaults(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := check(t, data, "")
	r.expect(t, 0, "OK, with 1 warning")
	if !r.has("WARN", "certificate", "will generate a self-signed certificate for localhost") {
		t.Error("the certificate to come is not reported")
	}
	if !r.has("ok", "storage", "xmppd.db will be created at start") || !r.has("ok", "presence", "in memory") {
		t.Error("storage or presence not reported")
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("-check created the data directory (%v)", err)
	}
}

// TestCheckSelfSigned: the certificate xmppd made is fine but self-signed.
func TestCheckSelfSigned(t *testing.T) {
	data := t.TempDir()
	certPEM, keyPEM, err := xmpp.SelfSignedCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(data, "cert.pem"), certPEM)
	writeFile(t, filepath.Join(data, "key.pem"), keyPEM)
	r := check(t, data, "")
	r.expect(t, 0, "OK, with 1 warning")
	if !r.has("WARN", "certificate", "is self-signed") || !r.has("ok", "certificate", "localhost *.localhost, expires") {
		t.Error("the self-signed certificate is not reported as such")
	}
}

func TestCheckCertificates(t *testing.T) {
	now := time.Now()
	ca := testenv.NewCA(t)
	for _, tc := range []struct {
		name      string
		dns       []string
		from, to  time.Time
		code      int
		mark, has string
	}{
		{"valid", []string{"example.net", "*.example.net"}, now.Add(-time.Hour), now.AddDate(0, 3, 0),
			0, "ok", "example.net *.example.net, expires"},
		{"expired", []string{"example.net", "*.example.net"}, now.AddDate(0, -3, 0), now.Add(-time.Hour),
			1, "FAIL", "expired on"},
		{"expiring", []string{"example.net", "*.example.net"}, now.AddDate(0, -2, 0), now.Add(5*24*time.Hour + time.Hour),
			0, "WARN", "expires in 5 day(s)"},
		{"not yet valid", []string{"example.net", "*.example.net"}, now.Add(24 * time.Hour), now.AddDate(0, 3, 0),
			1, "FAIL", "is not valid before"},
		{"other domain", []string{"example.org"}, now.Add(-time.Hour), now.AddDate(0, 3, 0),
			1, "FAIL", "does not name the domain example.net (it names example.org)"},
		{"no service names", []string{"example.net"}, now.Add(-time.Hour), now.AddDate(0, 3, 0),
			0, "WARN", "does not name conference.example.net"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			issue(t, ca, data, tc.dns, tc.from, tc.to)
			r := check(t, data, "domain: example.net\n")
			if r.code != tc.code {
				t.Errorf("status %d, want %d", r.code, tc.code)
			}
			if !r.has(tc.mark, "certificate", tc.has) {
				t.Errorf("no %s certificate line with %q", tc.mark, tc.has)
			}
			if r.has("ok|WARN|FAIL", "certificate", "self-signed") {
				t.Error("a certificate from a CA is called self-signed")
			}
		})
	}
}

// TestCheckTrustedChain: a certificate whose chain leads to a root the
// system trusts gets no warning; one whose root is unknown does.
func TestCheckTrustedChain(t *testing.T) {
	ca := testenv.NewCA(t)
	data := t.TempDir()
	issue(t, ca, data, []string{"example.net", "*.example.net"}, time.Now().Add(-time.Hour), time.Now().AddDate(0, 3, 0))
	r := check(t, data, "domain: example.net\n")
	r.expect(t, 0, "OK, with 1 warning")
	if !r.has("WARN", "certificate", "does not verify against this system's roots") {
		t.Error("a certificate from an unknown CA is not reported")
	}

	roots := filepath.Join(t.TempDir(), "roots.pem")
	writeFile(t, roots, ca.PEM)
	t.Setenv("SSL_CERT_FILE", roots) // Go's system roots on Unix
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	r = check(t, data, "domain: example.net\n")
	r.expect(t, 0, "OK")
	if strings.Contains(r.out, "WARN") {
		t.Error("a warning about a certificate that verifies")
	}
}

func TestCheckBadFiles(t *testing.T) {
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "cert.pem"), []byte("not a certificate\n"))
	writeFile(t, filepath.Join(data, "key.pem"), []byte("not a key\n"))
	writeFile(t, filepath.Join(data, "xmppd.db"), []byte("not a database, but long enough\n"))
	r := check(t, data, "")
	r.expect(t, 1, "FAILED: 2 problem(s)")
	if !r.has("FAIL", "certificate", "cert.pem") || !r.has("FAIL", "storage", "is not an SQLite database") {
		t.Error("the bad certificate or database is not reported")
	}

	// Only one of the pair: the server would not make a new pair either.
	os.Remove(filepath.Join(data, "key.pem"))
	r = check(t, t.TempDir(), "tls:\n  cert: "+filepath.Join(data, "cert.pem")+"\n")
	r.expect(t, 1, "FAILED: 1 problem(s)")
}

func TestCheckBadConfig(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{"domian: example.net\n", "field domian not found"},
		{"storage:\n  backend: postgres\n", "postgres_dsn is empty"},
		{"auth:\n  tokens:\n    secret_file: /nonexistent/secret\n", "auth.tokens.secret_file"},
		// A cluster node without the shared dialback key would federate
		// with a random one: the check says so before the start does.
		{"s2s:\n  dialback_secret_file: /nonexistent/secret\n", "s2s.dialback_secret_file"},
	} {
		r := check(t, t.TempDir(), tc.cfg)
		r.expect(t, 1, "FAILED: 1 problem(s)")
		if !r.has("FAIL", "config", tc.want) {
			t.Errorf("config %q: no FAIL config line with %q", tc.cfg, tc.want)
		}
		// Nothing else is checked against a configuration that is wrong.
		if strings.Contains(r.out, "storage:") {
			t.Errorf("config %q: storage checked after a bad configuration", tc.cfg)
		}
	}
	// A flag's value is validated as the file's is.
	r := check(t, t.TempDir(), "", "-domain", "example.net")
	if !r.has("ok", "config", "domain example.net") {
		t.Error("-domain is not applied to the check")
	}
}

// TestCheckUnreachable: Postgres and Redis addresses where nothing listens
// fail the check, each on its own line.
func TestCheckUnreachable(t *testing.T) {
	port := freePort(t)
	r := check(t, t.TempDir(), "storage:\n  backend: postgres\n  postgres_dsn: postgres://xmppd:s3cret-pw@"+port+"/xmppd?sslmode=disable&connect_timeout=5\n"+
		"presence:\n  backend: redis\n  redis: "+freePort(t)+"\n")
	r.expect(t, 1, "FAILED: 2 problem(s)")
	if !r.has("FAIL", "storage", "postgres 127.0.0.1:") || !r.has("FAIL", "presence", "redis: ") {
		t.Error("the unreachable servers are not reported")
	}
	if strings.Contains(r.out, "s3cret-pw") {
		t.Error("the check printed the database password")
	}
}

// TestCheckServices: the real Postgres and Redis answer; the check leaves
// the schema as it was (migrations are the server's to apply).
func TestCheckServices(t *testing.T) {
	dsn := pgtest.DSN(t)
	addr := redistest.Addr(t)
	cfg := "storage:\n  backend: postgres\n  postgres_dsn: " + dsn + "\npresence:\n  backend: redis\n  redis: " + addr + "\n"
	r := check(t, t.TempDir(), cfg)
	r.expect(t, 0, "OK, with 1 warning")
	if !r.has("ok", "storage", "empty; the tables will be created at start") || !r.has("ok", "presence", "redis answers") {
		t.Error("Postgres or Redis not reported as answering")
	}

	// Once the server has run, the check counts the migrations.
	data := t.TempDir()
	s := startServer(t, data, "-config", writeTemp(t, cfg))
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	r = check(t, data, cfg)
	r.expect(t, 0, "OK, with 1 warning") // the self-signed certificate
	if !r.has("ok", "storage", "migrations applied") {
		t.Error("the migrations are not counted")
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xmppd.yaml")
	writeFile(t, path, []byte(content))
	return path
}

// freePort is a loopback address where nothing listens.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// issue writes cert.pem (leaf and CA) and key.pem from ca into dir.
func issue(t *testing.T, ca *testenv.CA, dir string, dns []string, from, to time.Time) {
	t.Helper()
	chain, key := ca.IssuePEM(t, from, to, dns...)
	writeFile(t, filepath.Join(dir, "cert.pem"), chain)
	writeFile(t, filepath.Join(dir, "key.pem"), key)
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/storage/redis"
)

// certWarnBefore is how long before its expiry a certificate is reported:
// ACME clients renew 30 days ahead, so one this close has missed renewals.
const certWarnBefore = 14 * 24 * time.Hour

// checkTimeout bounds each check that waits for a server (Postgres, Redis).
const checkTimeout = 10 * time.Second

// checker collects the findings of xmppd -check.
type checker struct {
	w               io.Writer
	now             time.Time
	fails, warnings int
}

func (c *checker) ok(what, format string, a ...any) { c.line("ok  ", what, format, a...) }

func (c *checker) warn(what, format string, a ...any) {
	c.warnings++
	c.line("WARN", what, format, a...)
}

func (c *checker) fail(what, format string, a ...any) {
	c.fails++
	c.line("FAIL", what, format, a...)
}

// line prints one finding on one line (YAML errors come on several).
func (c *checker) line(mark, what, format string, a ...any) {
	msg := strings.Fields(fmt.Sprintf(format, a...))
	fmt.Fprintf(c.w, "%s  %-12s %s\n", mark, what+":", strings.Join(msg, " "))
}

// quietRedis drops go-redis's own log lines: the check reports the error
// on its line.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// runCheck is xmppd -check: it checks what the server needs to start and
// serve — the configuration (loaded with loadErr), the certificate, the
// storage and Redis — without starting it and without changing anything
// (no certificate generated, no migration applied, no registry entry
// written), prints one line per finding and a verdict, and returns
// errReported when something would stop the server or break clients.
func runCheck(w io.Writer, path string, cfg config.Config, loadErr error) error {
	c := &checker{w: w, now: time.Now()}
	goredis.SetLogger(quietRedis{}) // the process ends after the check
	if c.checkConfig(path, cfg, loadErr) {
		c.checkCert(cfg)
		ctx := context.Background()
		c.checkStorage(ctx, cfg)
		c.checkPresence(ctx, cfg)
	}
	if c.fails > 0 {
		fmt.Fprintf(w, "FAILED: %d problem(s), %d warning(s)\n", c.fails, c.warnings)
		return errReported
	}
	if c.warnings > 0 {
		fmt.Fprintf(w, "OK, with %d warning(s)\n", c.warnings)
		return nil
	}
	fmt.Fprintln(w, "OK")
	return nil
}

// checkConfig runs the validation that xmppd runs at start (Load's, the
// web policy and the token secret), also on the values the flags changed.
// It reports whether the rest can be checked.
func (c *checker) checkConfig(path string, cfg config.Config, loadErr error) bool {
	source := cmp.Or(path, "none, built-in defaults")
	err := loadErr
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		_, err = cfg.TokenSecret()
	}
	if err == nil {
		_, err = cfg.DialbackSecret()
	}
	if err != nil {
		c.fail("config", "%s: %v", source, err)
		return false
	}
	c.ok("config", "%s: domain %s, data in %s", source, cfg.Domain, cfg.DataDir)
	return true
}

// checkCert loads the certificate and key as the server does and checks
// that they serve the domain for long enough.
func (c *checker) checkCert(cfg config.Config) {
	certFile, keyFile := cfg.CertFiles()
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	if errors.Is(errC, os.ErrNotExist) && errors.Is(errK, os.ErrNotExist) {
		// LoadOrCreateCert makes one at start in this case only.
		c.warn("certificate", "%s does not exist: xmppd will generate a self-signed certificate for %s at start, which clients will not trust; see docs/deploy.md", certFile, cfg.Domain)
		return
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		c.fail("certificate", "%s, %s: %v", certFile, keyFile, err)
		return
	}
	leaf := pair.Leaf
	if leaf == nil { // LoadX509KeyPair fills it since Go 1.23
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			c.fail("certificate", "%s: %v", certFile, err)
			return
		}
	}
	left := leaf.NotAfter.Sub(c.now)
	current := left > 0 && !c.now.Before(leaf.NotBefore)
	expiry := fmt.Sprintf("%s, expires %s", strings.Join(leaf.DNSNames, " "), leaf.NotAfter.UTC().Format(time.DateOnly))
	switch {
	case left <= 0:
		c.fail("certificate", "%s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case c.now.Before(leaf.NotBefore):
		c.fail("certificate", "%s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	case left < certWarnBefore:
		c.warn("certificate", "%s expires in %d day(s), on %s: renew it (SIGHUP reloads it)", certFile, int(left.Hours()/24), leaf.NotAfter.UTC().Format(time.RFC3339))
	default:
		c.ok("certificate", "%s: %s", certFile, expiry)
	}
	// Clients check the domain (RFC 6120 §13.7.2.1); remote servers check
	// the services' domains too when they connect to them over s2s.
	if err := leaf.VerifyHostname(cfg.Domain); err != nil {
		c.fail("certificate", "%s does not name the domain %s (it names %s)", certFile, cfg.Domain, names(leaf))
	}
	var services []string
	if cfg.MUC.Enabled {
		services = append(services, cmp.Or(cfg.MUC.Domain, "conference."+cfg.Domain))
	}
	if cfg.Upload.Enabled {
		services = append(services, cmp.Or(cfg.Upload.Domain, "upload."+cfg.Domain))
	}
	for _, d := range services {
		if err := leaf.VerifyHostname(d); err != nil {
			c.warn("certificate", "%s does not name %s: other servers reaching it over s2s will fall back to dialback", certFile, d)
		}
	}
	if selfSigned(leaf) {
		c.warn("certificate", "%s is self-signed: clients will not trust it, and other servers will use dialback; see docs/deploy.md for ACME certificates", certFile)
		return
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter, CurrentTime: c.now}); err != nil && current {
		c.warn("certificate", "%s does not verify against this system's roots (is the chain, fullchain.pem, in the file?): %v", certFile, err)
	}
}

func names(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) == 0 {
		return "no DNS names"
	}
	return strings.Join(leaf.DNSNames, ", ")
}

func selfSigned(leaf *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignatureFrom(leaf) == nil
}

// checkStorage reaches the storage backend without changing it: migrations
// are applied by the server at start, not here.
func (c *checker) checkStorage(ctx context.Context, cfg config.Config) {
	if cfg.Storage.Backend == "postgres" {
		c.checkPostgres(ctx, cfg.Storage.Postgres)
		return
	}
	path := cmp.Or(cfg.Storage.SQLite, filepath.Join(cfg.DataDir, "xmppd.db"))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if dir := existingParent(filepath.Dir(path)); !writable(dir) {
			c.fail("storage", "sqlite %s does not exist, and %s is not writable to create it", path, dir)
			return
		}
		c.ok("storage", "sqlite %s will be created at start", path)
		return
	}
	if err != nil {
		c.fail("storage", "sqlite %s: %v", path, err)
		return
	}
	defer f.Close()
	header := make([]byte, 16)
	if _, err := io.ReadFull(f, header); err != nil || string(header) != "SQLite format 3\x00" {
		c.fail("storage", "sqlite %s is not an SQLite database", path)
		return
	}
	c.ok("storage", "sqlite %s", path)
}

// checkPostgres connects, and reads how many migrations the schema has.
func (c *checker) checkPostgres(ctx context.Context, dsn string) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors leave the password out.
		c.fail("storage", "postgres: %v", err)
		return
	}
	where := fmt.Sprintf("postgres %s:%d database %s user %s", pc.Host, pc.Port, pc.Database, pc.User)
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		c.fail("storage", "%s: %v", where, err)
		return
	}
	defer conn.Close(context.Background())
	var schema string
	var applied int
	err = conn.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema)
	if err == nil && schema == "" {
		c.fail("storage", "%s: no schema to create tables in (does the search_path's schema exist?)", where)
		return
	}
	var exists bool
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists)
	}
	if err == nil && exists {
		err = conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied)
	}
	if err != nil {
		c.fail("storage", "%s: %v", where, err)
		return
	}
	if applied == 0 {
		c.ok("storage", "%s, schema %s: empty; the tables will be created at start", where, schema)
		return
	}
	c.ok("storage", "%s, schema %s: %d migrations applied (pending ones apply at start)", where, schema, applied)
}

// checkPresence pings Redis when the registry lives there.
func (c *checker) checkPresence(ctx context.Context, cfg config.Config) {
	if cfg.Presence.Backend != "redis" {
		c.ok("presence", "in memory (a single node)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := redis.Ping(ctx, cfg.Presence.Redis); err != nil {
		c.fail("presence", "redis: %v", err)
		return
	}
	c.ok("presence", "redis answers")
}

// existingParent is dir or its nearest ancestor that exists: OpenStore
// creates the missing ones.
func existingParent(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return dir
		}
		dir = up
	}
}

// writable reports whether a file can be created in dir, by creating one.
func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".xmppd-check-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

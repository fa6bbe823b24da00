package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage/postgres/pgtest"
)

// TestStartLogSaysWhatRuns: the start-up log names the domain, the storage
// (backend and file), the presence backend and every listener, closed ones
// included.
func TestStartLogSaysWhatRuns(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "-domain", "localhost")
	log := s.log.String()
	db, _ := filepath.Abs(filepath.Join(data, "xmppd.db"))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`level=INFO msg=starting version=\S+ domain=localhost config="\(none`),
		regexp.MustCompile(`level=INFO msg=storage backend=sqlite file=` + regexp.QuoteMeta(db) + `\n`),
		regexp.MustCompile(`level=INFO msg=presence backend=memory node=`),
		regexp.MustCompile(`msg=listening kind="c2s starttls" addr=127\.0\.0\.1:\d+ domain=localhost`),
		regexp.MustCompile(`msg=listening kind="s2s starttls" addr=127\.0\.0\.1:\d+`),
		regexp.MustCompile(`msg="not listening" kind="s2s direct tls"`),
		regexp.MustCompile(`msg="not listening" kind="https \(websocket, bosh, web client\)"`),
	} {
		if !want.MatchString(log) {
			t.Errorf("the start-up log has no match for %v:\n%s", want, log)
		}
	}
}

// TestBadLogLevel: a log.level xmppd does not know stops it, in the file
// and in the flag, instead of running at info.
func TestBadLogLevel(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	if err := os.WriteFile(cfg, []byte("log:\n  level: verbose\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-config", cfg}, {"-log-level", "loud"}} {
		code, _, errOut := runXmppd(t, args...)
		if code != 1 || !strings.Contains(errOut, "log.level") {
			t.Errorf("xmppd %q: status %d, stderr %q; want 1 and an error about log.level", args, code, errOut)
		}
	}
}

// TestMissingSchema: a Postgres DSN whose search_path names a schema that
// does not exist stops xmppd with an error naming it, before it generates a
// certificate, in the log's own format.
func TestMissingSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	// A schema of the test database's own, to be sure it does not exist.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS nosuch_schema CASCADE")
	conn.Close(context.Background())
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "xmppd.yaml")
	body := "data_dir: " + data + "\nstorage:\n  backend: postgres\n  postgres_dsn: \"" + dsn + sep + "search_path=nosuch_schema\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runXmppd(t, "-config", cfg, "-c2s", "127.0.0.1:0", "-c2s-tls", "127.0.0.1:0", "-http", "127.0.0.1:0", "-s2s", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "nosuch_schema") || !strings.Contains(errOut, "does not exist") {
		t.Errorf("status %d, stderr:\n%s\nwant 1 and the schema named as missing", code, errOut)
	}
	if !regexp.MustCompile(`(?m)^time=\S+ level=ERROR msg="xmppd cannot run" err=".*nosuch_schema`).MatchString(errOut) {
		t.Errorf("the fatal error is not a log line in the log's format:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "cert.pem")); !os.IsNotExist(err) {
		t.Errorf("cert.pem was generated before the storage failed (stat: %v)", err)
	}
}

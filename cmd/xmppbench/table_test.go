package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTableVariants: a scenario variant that failed (an error line as
// xmppbench writes it, or a result in which no client got through) shows
// n/a in its own row and leaves the other variants' figures alone.
func TestTableVariants(t *testing.T) {
	failedSM := errorResult("idle", &config{server: "ejabberd", curves: "classic", sm: true}, errors.New("context deadline exceeded"))
	failedLine, err := json.Marshal(failedSM)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"scenario":"idle","server":"ejabberd","sessions":100,"failed":0,"rss_after_kib":10240,"kib_per_session":68.2,"curves":"classic"}`,
		string(failedLine),
		`{"scenario":"idle","server":"prosody","sessions":0,"failed":100,"kib_per_session":0,"curves":"classic","stream_management":true,"errors":{"unsupported-stanza-type":100}}`,
		`{"scenario":"idle","server":"xmppd","sessions":100,"failed":0,"rss_after_kib":2048,"kib_per_session":22.6,"curves":"classic","stream_management":true}`,
		`{"scenario":"idle","server":"xmppd","sessions":100,"failed":0,"rss_after_kib":2048,"kib_per_session":23.4,"curves":"classic"}`,
	}
	out := table(t, lines)
	row := func(prefix string) []string {
		for _, l := range bytes.Split(out, []byte("\n")) {
			if strings.HasPrefix(string(l), "| "+prefix) {
				return strings.Split(string(l), " | ")
			}
		}
		t.Fatalf("no row %q in\n%s", prefix, out)
		return nil
	}
	// Columns: metric, better, ejabberd, prosody, xmppd, ratio (servers in
	// the order prosody, ejabberd, xmppd).
	if r := row("idle: KiB per session"); r[2] != "–" || r[3] != "68.2" || r[4] != "23.4" {
		t.Errorf("idle row: %q\n%s", r, out)
	}
	if r := row("idle, stream management on: KiB per session"); r[2] != "n/a" || r[3] != "n/a" || r[4] != "22.6" {
		t.Errorf("idle with stream management: %q\n%s", r, out)
	}
	for _, want := range []string{"ejabberd, idle, stream management on: context deadline exceeded", "prosody, idle, stream management on: errors: 100 × unsupported-stanza-type"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("no note %q in\n%s", want, out)
		}
	}
}

// TestTableTeam: the team scenario's rows, per size and pace; a run that
// did not settle shows n/a past its logins, and xmppd's database CPU
// counts in the CPU per login with the database's.
func TestTableTeam(t *testing.T) {
	lines := []string{
		`{"scenario":"team","server":"prosody","clients":20,"concurrency":50,"ok":20,"failed":0,"logins_per_s":190,"roster_items_min":19,"roster_items_max":19,"settled":true,"settle_seconds":0.14,"pairs_seen":380,"pairs_wanted":380,"presences_received":380,"server_cpu_seconds":0.08,"cpu_ms_per_login":4,"kib_per_session":75.6}`,
		`{"scenario":"team","server":"ejabberd","clients":20,"concurrency":50,"ok":20,"failed":0,"logins_per_s":53,"roster_items_min":18,"roster_items_max":19,"settled":false,"pairs_seen":18,"pairs_wanted":380,"presences_received":18,"server_cpu_seconds":0.39,"cpu_ms_per_login":19.5,"kib_per_session":700}`,
		`{"scenario":"team","server":"xmppd","clients":20,"concurrency":50,"ok":20,"failed":0,"logins_per_s":178,"roster_items_min":19,"roster_items_max":19,"settled":true,"settle_seconds":0.13,"pairs_seen":380,"pairs_wanted":380,"presences_received":655,"server_cpu_seconds":0.06,"cpu_ms_per_login":3,"db_cpu_seconds":0.03,"kib_per_session":220}`,
		`{"scenario":"team","server":"xmppd","clients":1000,"rate_per_s":100,"error":"context deadline exceeded"}`,
	}
	out := table(t, lines)
	// Columns: metric, better, prosody, ejabberd, xmppd, ratio.
	for _, tc := range []struct{ row, prosody, ejabberd, xmppd string }{
		{"team of 20, 50 logins at a time: logins/s", "190.0", "53.0", "178.0"},
		{"team of 20, 50 logins at a time: seconds until everyone saw everyone online", "0.14", "n/a", "0.13"},
		{"team of 20, 50 logins at a time: server CPU per login, ms", "4.0", "n/a", "3.0"},
		{"team of 20, 50 logins at a time: CPU per login with the database's, ms", "4.0", "n/a", "4.5"},
		{"team of 20, 50 logins at a time: roster items", "19", "18–19", "19"},
		{"team of 1000, 100 logins/s: logins/s", "–", "–", "n/a"},
	} {
		var cells []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "| "+tc.row+" |") {
				cells = strings.Split(l, " | ")
			}
		}
		if len(cells) < 5 || cells[2] != tc.prosody || cells[3] != tc.ejabberd || cells[4] != tc.xmppd {
			t.Errorf("row %q: %q, want %s, %s, %s\n%s", tc.row, cells, tc.prosody, tc.ejabberd, tc.xmppd, out)
		}
	}
	for _, want := range []string{"ejabberd, team of 20, 50 logins at a time: not settled, 18 of 380 pairs seen",
		"xmppd, team of 1000, 100 logins/s: context deadline exceeded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no note %q in\n%s", want, out)
		}
	}
}

// table runs bench/table.py on results.jsonl lines and returns its output.
func table(t *testing.T, lines []string) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", filepath.Join("..", "..", "bench", "table.py"), file).CombinedOutput()
	if err != nil {
		t.Fatalf("table.py: %v\n%s", err, out)
	}
	return out
}

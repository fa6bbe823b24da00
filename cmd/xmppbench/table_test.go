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
	file := filepath.Join(t.TempDir(), "results.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", filepath.Join("..", "..", "bench", "table.py"), file).CombinedOutput()
	if err != nil {
		t.Fatalf("table.py: %v\n%s", err, out)
	}
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

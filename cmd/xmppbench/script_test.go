package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchScript runs the comparison script, bench/run.sh, as a user would,
// at its smallest (QUICK=1) and against xmppd alone (the Prosody and
// ejabberd runs take minutes and their packages): every scenario gives a
// result without errors, and the table shows them.
func TestBenchScript(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("bench/run.sh needs root (apt-get, runuser)")
		}
		t.Skip("bench/run.sh needs root (apt-get, runuser)")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "..", "bench", "run.sh"))
	cmd.Env = append(os.Environ(), "SERVERS=xmppd", "QUICK=1", "BENCH_DIR="+dir, "IDLE_CURVES=classic default")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/run.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"| login SCRAM-SHA-1: logins/s", "| idle: KiB per session", "| idle, client offers default curves: KiB per session", "| chat: best msgs/s delivered", "| muc: best deliveries/s", "xmppd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the table has no %q:\n%s", want, out)
		}
	}
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		name, _ := r["scenario"].(string)
		seen[name]++
		if r["server"] != "xmppd" {
			t.Errorf("result for server %v", r["server"])
		}
		switch name {
		case "login":
			if r["failed"] != 0.0 || r["ok"] != 100.0 {
				t.Errorf("login: %v", r)
			}
		case "idle":
			if r["failed"] != 0.0 || r["sessions"] != 500.0 || r["kib_per_session"].(float64) <= 0 {
				t.Errorf("idle: %v", r)
			}
			want := map[string]string{"classic": "map[X25519:500]", "default": "map[X25519MLKEM768:500]"}
			if got := fmt.Sprint(r["key_exchange"]); got != want[fmt.Sprint(r["curves"])] {
				t.Errorf("idle with %v curves: key exchanges %s", r["curves"], got)
			}
		case "chat":
			if r["best_delivered_per_s"].(float64) <= 0 {
				t.Errorf("chat: %v", r)
			}
		case "muc":
			if r["best_delivered_per_s"].(float64) <= 0 || r["room"] != "bench@conference.localhost" {
				t.Errorf("muc: %v", r)
			}
		default:
			t.Errorf("unexpected result %v", r)
		}
	}
	if seen["login"] != 2 || seen["idle"] != 2 || seen["chat"] != 1 || seen["muc"] != 1 {
		t.Errorf("results per scenario: %v", seen)
	}
}

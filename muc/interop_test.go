package muc_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixmppMUC walks a room's life with slixmpp's XEP-0045 plugin
// (internal/testenv/slixmpp_muc.py): create and configure, join and
// fan-out, history, nick conflict, kick, ban, password and members-only
// refusals, destroy.
func TestSlixmppMUC(t *testing.T) {
	testenv.NeedSlixmpp(t)
	s := start(t)
	owner := s.AddUser(t, "owner", "pw")
	guest := s.AddUser(t, "guest", "pw")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(s.C2S, ":")
	cmd := exec.Command(testenv.Python, filepath.Join("..", "internal", "testenv", "slixmpp_muc.py"),
		"--jid", owner.String(), "--guest", guest.String(), "--password", "pw",
		"--port", port, "--cafile", ca, "--room", "interop@"+service, "--timeout", "40")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slixmpp_muc.py: %v\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	want := []string{"configured", "fanout", "history", "conflict", "kicked", "banned", "password", "membersonly", "destroyed"}
	var got []string
	done := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev["event"] {
		case "step":
			got = append(got, ev["name"].(string))
			if ev["ok"] != true {
				t.Errorf("step %s failed: %s", ev["name"], sc.Text())
			}
		case "done":
			done = true
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") || !done {
		t.Fatalf("steps %v (done %v), want %v\nstderr:\n%s", got, done, want, stderr.String())
	}
}

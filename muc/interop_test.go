package muc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixmppMUC walks a room's life with slixmpp's XEP-0045 plugin
// (internal/testenv/slixmpp_muc.py): create and configure, join and
// fan-out, history, nick conflict, kick, ban, password and members-only
// refusals, destroy.
func TestSlixmppMUC(t *testing.T) {
	testenv.NeedSlixmpp(t)
	s := start(t)
	s.AddUser(t, "owner", "pw")
	s.AddUser(t, "guest", "pw")
	slixMUC(t, s, "interop@"+service, "all",
		"configured", "fanout", "history", "conflict", "nickchange", "kicked", "banned", "password", "membersonly", "destroyed")
}

// TestSlixmppMUCRestart: a persistent room slixmpp configured keeps its
// name, subject and owner across a restart of xmppd, on both backends.
func TestSlixmppMUCRestart(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		s := startOn(t, backend, store)
		s.AddUser(t, "owner", "pw")
		s.AddUser(t, "guest", "pw")
		slixMUC(t, s, "lasting@"+service, "persist-create", "persisted")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		slixMUC(t, startOn(t, backend, store), "lasting@"+service, "persist-check", "restored")
	})
}

// slixMUC runs internal/testenv/slixmpp_muc.py as owner@ and guest@ (password
// "pw") and checks that it reports exactly the steps named, each ok.
func slixMUC(t *testing.T, s *testenv.Server, room, phase string, want ...string) {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(s.C2S, ":")
	cmd := exec.Command(testenv.Python, filepath.Join("..", "internal", "testenv", "slixmpp_muc.py"),
		"--jid", "owner@"+testenv.Domain, "--guest", "guest@"+testenv.Domain, "--password", "pw",
		"--port", port, "--cafile", ca, "--room", room, "--phase", phase, "--timeout", "40")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slixmpp_muc.py: %v\n%s\nstderr:\n%s", err, out, stderr.String())
	}
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

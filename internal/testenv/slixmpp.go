package testenv

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Python is the interpreter that has Debian's python3-slixmpp.
const Python = "/usr/bin/python3"

// NeedSlixmpp skips the test when slixmpp is not installed, and fails it
// when CI=true: in CI every service a test needs must be there.
func NeedSlixmpp(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("slixmpp is missing (%v): scripts/test-deps.sh installs python3-slixmpp", err)
		}
		t.Skipf("slixmpp is missing (%v); run scripts/test-deps.sh", err)
	}
}

// SlixEvent is one JSON line of slixmpp_client.py.
type SlixEvent struct {
	Event     string `json:"event"`
	JID       string `json:"jid"`
	From      string `json:"from"`
	Body      string `json:"body"`
	Condition string `json:"condition"`
	Text      string `json:"text"` // auth_failed: the <failure/>'s <text/>
	Reason    string `json:"reason"`
}

// Slix is a running slixmpp client.
type Slix struct {
	cmd    *exec.Cmd
	Events chan SlixEvent
	done   chan error
	stderr *strings.Builder
}

// StartSlix runs slixmpp_client.py against s with the given arguments
// (--port and --cafile are added).
func (s *Server) StartSlix(t testing.TB, port string, args ...string) *Slix {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "slixmpp_client.py")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{script, "--host", "127.0.0.1", "--port", port, "--cafile", ca, "--timeout", "20"}, args...)
	cmd := exec.Command(Python, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sl := &Slix{cmd: cmd, Events: make(chan SlixEvent, 16), done: make(chan error, 1), stderr: &strings.Builder{}}
	cmd.Stderr = sl.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev SlixEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				sl.Events <- ev
			}
		}
		close(sl.Events)
		sl.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return sl
}

// Expect waits for an event of the given kind, failing on the end of output.
func (sl *Slix) Expect(t testing.TB, event string) SlixEvent {
	t.Helper()
	timer := time.NewTimer(Timeout + 5*time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-sl.Events:
			if !ok {
				t.Fatalf("slixmpp ended before %q; stderr:\n%s", event, sl.stderr.String())
			}
			if ev.Event == event {
				return ev
			}
		case <-timer.C:
			t.Fatalf("slixmpp: no %q in time; stderr:\n%s", event, sl.stderr.String())
		}
	}
}

// Wait waits for the client to exit and returns its exit code.
func (sl *Slix) Wait(t testing.TB) int {
	t.Helper()
	for range sl.Events {
	}
	select {
	case err := <-sl.done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(Timeout + 5*time.Second):
		t.Fatal("slixmpp did not exit")
		return -1
	}
}

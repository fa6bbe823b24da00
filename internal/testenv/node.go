package testenv

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// NeedWeb checks that Node.js and the npm packages of web/ (installed by
// scripts/web-deps.sh) are there, and with chromium that Chromium is too;
// without them the test is skipped, or fails under CI=true.
func NeedWeb(t testing.TB, chromium bool) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node"
	} else if _, err := os.Stat(filepath.Join(WebDir(), "node_modules", "strophe.js")); err != nil {
		missing = "web/node_modules"
	} else if chromium {
		if _, err := os.Stat(Chromium); err != nil {
			missing = Chromium
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: scripts/web-deps.sh installs it", missing)
	}
	t.Skipf("%s is missing; run scripts/web-deps.sh", missing)
}

// Chromium is Debian's chromium, which the browser tests drive.
const Chromium = "/usr/bin/chromium"

// Node is a running script of web/test that reports JSON lines.
type Node struct {
	cmd    *exec.Cmd
	events chan map[string]any
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// StartNode runs node with web/test/script and args; it is killed when t
// ends.
func StartNode(t testing.TB, script string, args ...string) *Node {
	t.Helper()
	n, _ := startNode(t, script, args)
	t.Cleanup(func() {
		select {
		case <-n.exited:
		default:
			n.cmd.Process.Kill()
			<-n.exited
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, n.stderr)
		}
	})
	return n
}

// startNode starts node with web/test/script and args, with a pipe to its
// stdin, and a goroutine that hands each JSON line it prints to events.
func startNode(t testing.TB, script string, args []string) (*Node, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(WebDir(), "test", script)}, args...)...)
	n := &Node{cmd: cmd, events: make(chan map[string]any, 256), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = n.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ev := map[string]any{}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = map[string]any{"event": "bad_output", "text": sc.Text()}
			}
			n.events <- ev
		}
		n.err = cmd.Wait()
		close(n.events)
		close(n.exited)
	}()
	return n, stdin
}

// Expect waits for the next event of the given kind, failing on an error
// event, the end of the script, or after timeout.
func (n *Node) Expect(t testing.TB, event string, timeout time.Duration) map[string]any {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-n.events:
			if !ok {
				t.Fatalf("script ended (%v) while waiting for %q", n.err, event)
			}
			if ev["event"] == "error" || ev["event"] == "bad_output" {
				t.Fatalf("waiting for %q: %v", event, ev)
			}
			if ev["event"] == event {
				return ev
			}
		case <-timer.C:
			t.Fatalf("timed out waiting for %q", event)
		}
	}
}

// Wait waits for the script to exit and returns its error (nil: status 0).
func (n *Node) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	go func() {
		for range n.events {
		}
	}()
	select {
	case <-n.exited:
		return n.err
	case <-time.After(timeout):
		t.Fatal("the script did not exit")
		return nil
	}
}

package testenv

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// NodeCmd is a script of web/test that takes commands as well: JSON lines
// on its stdin (Send), besides reporting JSON lines as a Node does (Expect,
// Next). web/test/xmppjs-sm.mjs is one.
type NodeCmd struct {
	*Node
	mu    sync.Mutex // serialises writes to stdin
	stdin io.WriteCloser
}

// StartNodeCmd runs node with web/test/script and args, with a pipe to its
// stdin. When t ends stdin is closed (the script's cue to leave politely)
// and the script is killed if it has not exited a second later.
func StartNodeCmd(t testing.TB, script string, args ...string) *NodeCmd {
	t.Helper()
	node, stdin := startNode(t, script, args)
	n := &NodeCmd{Node: node, stdin: stdin}
	t.Cleanup(func() {
		n.mu.Lock()
		n.stdin.Close()
		n.mu.Unlock()
		grace := time.AfterFunc(time.Second, func() { n.cmd.Process.Kill() })
		for range n.events {
		}
		<-n.exited
		grace.Stop()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, n.stderr)
		}
	})
	return n
}

// Send writes one command (a JSON object) as a line to the script's stdin.
func (n *NodeCmd) Send(t testing.TB, cmd map[string]any) {
	t.Helper()
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := n.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, n.stderr)
	}
}

// Next returns the next event, whatever its kind, failing t when none
// comes within timeout; ok is false when the script has ended.
func (n *NodeCmd) Next(t testing.TB, timeout time.Duration) (ev map[string]any, ok bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev, ok = <-n.events:
		return ev, ok
	case <-timer.C:
		t.Fatalf("no event from the script within %v; stderr:\n%s", timeout, n.stderr)
		return nil, false
	}
}

// NeedNodeModule is NeedWeb (without Chromium) for a script that needs
// the npm package module of web/package.json as well.
func NeedNodeModule(t testing.TB, module string) {
	t.Helper()
	NeedWeb(t, false)
	if _, err := os.Stat(filepath.Join(WebDir(), "node_modules", filepath.FromSlash(module), "package.json")); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("web/node_modules/%s is missing: scripts/web-deps.sh installs it", module)
	}
	t.Skipf("web/node_modules/%s is missing; run scripts/web-deps.sh", module)
}

package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// Prosody is a private Prosody (Debian's package) that a test runs as a
// federation peer or as a reference server for client interop: its own
// config, data and certificate in a temporary folder, c2s (and s2s, HTTP
// when asked for) on free loopback ports.
type Prosody struct {
	Domain string
	// C2S is the STARTTLS client port; S2S the federation port, "" with
	// ProsodyOptions.NoS2S; HTTP the HTTP port (mod_http, for
	// mod_websocket and mod_bosh), "" without ProsodyOptions.HTTP.
	C2S, S2S, HTTP string
	// CertPEM is its self-signed certificate (valid for Domain, not
	// trusted by anyone: dialback is what authenticates it).
	CertPEM []byte
	dir     string
	config  string
	cmd     *exec.Cmd
	exited  chan struct{}
	log     string
}

// NeedProsody skips the test when Prosody is not installed, or fails it
// under CI=true (scripts/test-deps.sh installs it).
func NeedProsody(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("prosody"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("prosody is missing: scripts/test-deps.sh installs it")
	}
	t.Skip("prosody is missing; run scripts/test-deps.sh")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartProsody runs Prosody for domain with the given extra config lines
// (Lua, before the VirtualHost), and stops it when t ends.
func StartProsody(t testing.TB, domain, extra string) *Prosody {
	t.Helper()
	return StartProsodyWith(t, ProsodyOptions{Domain: domain, Extra: extra})
}

// ProsodyOptions say how StartProsodyWith sets Prosody up; the zero value
// (with a Domain) is StartProsody's: c2s and s2s, the modules a federation
// peer needs.
type ProsodyOptions struct {
	Domain string
	// Extra is Lua config, written before the VirtualHost (global
	// options, Components).
	Extra string
	// Modules are enabled beside the defaults (roster, saslauth, tls,
	// disco, ping, version; dialback unless NoS2S), e.g. "smacks" or
	// "websocket".
	Modules []string
	// NoS2S leaves federation out: no s2s port, no dialback, mod_s2s
	// disabled, so this Prosody neither listens for nor opens server
	// connections (and can run beside a test that holds port 5269).
	NoS2S bool
	// HTTP opens mod_http on a free loopback port (Prosody.HTTP), with
	// the VirtualHost as the default HTTP host.
	HTTP bool
}

// StartProsodyWith runs Prosody as o says and stops it when t ends.
func StartProsodyWith(t testing.TB, o ProsodyOptions) *Prosody {
	t.Helper()
	NeedProsody(t)
	domain := o.Domain
	dir := t.TempDir()
	certPEM, keyPEM, err := xmpp.SelfSignedCert(domain)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c2s := freePort(t)
	p := &Prosody{
		Domain: domain, CertPEM: certPEM, dir: dir,
		C2S:    fmt.Sprintf("127.0.0.1:%d", c2s),
		config: filepath.Join(dir, "prosody.cfg.lua"), log: filepath.Join(dir, "prosody.log"),
	}
	modules := []string{"roster", "saslauth", "tls", "dialback", "disco", "ping", "version"}
	disabled := []string{"posix"}
	s2sPorts := ""
	if o.NoS2S {
		modules = slices.DeleteFunc(modules, func(m string) bool { return m == "dialback" })
		disabled = append(disabled, "s2s")
	} else {
		s2s := freePort(t)
		p.S2S = fmt.Sprintf("127.0.0.1:%d", s2s)
		s2sPorts = fmt.Sprint(s2s)
	}
	modules = append(modules, o.Modules...)
	httpPorts, httpHost := "", ""
	if o.HTTP {
		port := freePort(t)
		p.HTTP = fmt.Sprintf("127.0.0.1:%d", port)
		httpPorts = fmt.Sprint(port)
		httpHost = fmt.Sprintf("http_interfaces = { \"127.0.0.1\" }\nhttp_default_host = %q\n", domain)
	}
	cfg := fmt.Sprintf(`-- written by testenv.StartProsody
run_as_root = true
daemonize = false
data_path = %[1]q
pidfile = %[1]q .. "/prosody.pid"
log = { debug = %[2]q }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %[3]d }
s2s_ports = { %[4]s }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { %[9]s }
https_ports = { }
%[10]smodules_enabled = { %[11]s }
modules_disabled = { %[12]s }
c2s_require_encryption = true
s2s_require_encryption = true
-- The test certificates are valid for nobody: federation must fall back
-- to dialback.
s2s_secure_auth = false
authentication = "internal_hashed"
certificates = %[1]q
ssl = { certificate = %[5]q, key = %[6]q }
%[7]s
VirtualHost %[8]q
ssl = { certificate = %[5]q, key = %[6]q }
`, dir, p.log, c2s, s2sPorts, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), o.Extra, domain,
		httpPorts, httpHost, luaStrings(modules), luaStrings(disabled))
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start(t)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 200 {
				lines = lines[len(lines)-200:]
			}
			t.Logf("prosody log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

// luaStrings is the body of a Lua table of the given strings.
func luaStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func (p *Prosody) start(t testing.TB) {
	t.Helper()
	p.cmd = exec.Command("prosody", "--config", p.config)
	out, err := os.Create(filepath.Join(p.dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); out.Close(); close(p.exited) }()
	deadline := time.Now().Add(Timeout)
	for {
		c, err := net.Dial("tcp", p.C2S)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(filepath.Join(p.dir, "console.log"))
			t.Fatalf("prosody exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("prosody did not open its c2s port")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends Prosody (SIGTERM, then a kill after 5 s) and waits for it.
func (p *Prosody) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Register creates an account with prosodyctl.
func (p *Prosody) Register(t testing.TB, user, password string) {
	t.Helper()
	out, err := exec.Command("prosodyctl", "--config", p.config, "register", user, p.Domain, password).CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl register %s: %v\n%s", user, err, out)
	}
}

// Log returns Prosody's debug log so far.
func (p *Prosody) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// HostsEntry adds "127.0.0.1 name" to /etc/hosts for the test (Prosody
// resolves the domains it federates with, and there is no DNS here) and
// removes it when t ends. It needs root; without it the test is skipped,
// or fails under CI=true.
func HostsEntry(t testing.TB, names ...string) {
	t.Helper()
	const hosts = "/etc/hosts"
	old, err := os.ReadFile(hosts)
	if err == nil {
		err = os.WriteFile(hosts, append(old, []byte("127.0.0.1 "+strings.Join(names, " ")+" # xmppd test\n")...), 0o644)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("adding to %s: %v", hosts, err)
		}
		t.Skipf("cannot add to %s: %v", hosts, err)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(hosts)
		if err != nil {
			return
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !strings.HasSuffix(strings.TrimRight(l, "\n"), "# xmppd test") {
				keep = append(keep, l)
			}
		}
		os.WriteFile(hosts, []byte(strings.Join(keep, "")), 0o644)
	})
}

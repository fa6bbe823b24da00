package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage/sqlite"
)

// bin holds the xmppd and xmppctl binaries built by TestMain.
var bin string

// TestMain builds the real binaries once, so that the tests exercise what
// users run: flags, signals, exit codes and files on disk.
func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "xmppd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir, "./cmd/xmppd", "./cmd/xmppctl")
	build.Dir = filepath.Join("..", "..") // the module root; tests run in cmd/xmppd
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	bin = dir
	return m.Run()
}

// procLog collects a process's stderr and wakes waiters on every write.
type procLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// server is a running xmppd process.
type server struct {
	cmd     *exec.Cmd
	log     *procLog
	data    string
	c2s     string
	direct  string
	http    string
	admin   string
	exited  chan struct{} // closed when the process has ended
	waitErr error         // valid once exited is closed
}

var listening = regexp.MustCompile(`msg=listening kind="?([^"=]+?)"? addr=(\S+)`)

// startServer runs xmppd on data with loopback listeners on free ports, in a
// temporary working directory, and waits until both listeners are up.
func startServer(t *testing.T, data string, args ...string) *server {
	t.Helper()
	s := &server{
		data:   data,
		log:    &procLog{changed: make(chan struct{}, 1)},
		exited: make(chan struct{}),
	}
	s.cmd = exec.Command(filepath.Join(bin, "xmppd"), append([]string{
		"-data", data, "-c2s", "127.0.0.1:0", "-c2s-tls", "127.0.0.1:0", "-http", "127.0.0.1:0", "-s2s", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)...)
	s.cmd.Dir = t.TempDir()
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("xmppd stderr:\n%s", s.log)
		}
	})

	timer := time.NewTimer(testenv.Timeout)
	defer timer.Stop()
	for {
		for _, m := range listening.FindAllStringSubmatch(s.log.String(), -1) {
			switch m[1] {
			case "c2s starttls":
				s.c2s = m[2]
			case "c2s direct tls":
				s.direct = m[2]
			case "http (websocket, bosh, web client)":
				s.http = m[2]
			case "admin (api, metrics, health)":
				s.admin = m[2]
			}
		}
		if s.c2s != "" && s.direct != "" && s.http != "" && s.admin != "" {
			return s
		}
		select {
		case <-s.log.changed:
		case <-s.exited:
			t.Fatalf("xmppd exited before listening: %v\n%s", s.waitErr, s.log)
		case <-timer.C:
			t.Fatalf("xmppd did not report both listeners within %v:\n%s", testenv.Timeout, s.log)
		}
	}
}

// roots trusts the certificate xmppd generated in its data directory.
func (s *server) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.data, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("cert.pem holds no certificate")
	}
	return pool
}

func (s *server) clientTLS(t *testing.T) *tls.Config {
	return &tls.Config{ServerName: testenv.Domain, RootCAs: s.roots(t), MinVersion: tls.VersionTLS12}
}

// login opens a STARTTLS session as user with SCRAM-SHA-256 using
// mellium.im/xmpp, an independent client implementation.
func (s *server) login(t *testing.T, user, password string) (*mxmpp.Session, net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
	defer cancel()
	conn, err := net.Dial("tcp", s.c2s)
	if err != nil {
		t.Fatal(err)
	}
	tc := s.clientTLS(t)
	tc.ServerName = jid.MustParse(user).Domainpart()
	ms, err := mxmpp.NewClientSession(ctx, jid.MustParse(user), conn,
		mxmpp.StartTLS(tc),
		mxmpp.SASL("", password, sasl.ScramSha256),
		mxmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return ms, conn, nil
}

// xmppctl runs the built xmppctl binary and returns its exit status.
func xmppctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	// xmppctl never creates the database; a test that runs it before the
	// server's first start gets the empty one that start would make.
	if i := slices.Index(args, "-data"); i >= 0 && i+1 < len(args) {
		db := filepath.Join(args[i+1], "xmppd.db")
		if _, err := os.Stat(db); os.IsNotExist(err) {
			st, err := sqlite.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "xmppctl"), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("xmppctl %v: %v\n%s", args, err, out)
	return -1, ""
}

// TestStartWithoutConfig starts xmppd with no configuration file: it must
// make its certificate, protect the key, and require TLS on the c2s port.
func TestStartWithoutConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data") // does not exist yet
	s := startServer(t, data)

	for _, f := range []string{"cert.pem", "key.pem"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("%s was not created: %v", f, err)
		}
	}
	fi, err := os.Stat(filepath.Join(data, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", mode)
	}

	conn, err := net.Dial("tcp", s.c2s)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testenv.Timeout))
	if _, err := io.WriteString(conn, testenv.Header); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	d := xml.NewDecoder(io.TeeReader(conn, &raw))
	var features struct {
		StartTLS *struct {
			Required *struct{} `xml:"required"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	sawHeader := false
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("reading the server's stream: %v; got %q", err, raw.String())
		}
		st, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if st.Name.Local == "stream" {
			sawHeader = true
			continue
		}
		if st.Name.Local != "features" || !sawHeader {
			t.Fatalf("expected a stream header then features, got %q", raw.String())
		}
		if err := d.DecodeElement(&features, &st); err != nil {
			t.Fatalf("features: %v; got %q", err, raw.String())
		}
		break
	}
	if features.StartTLS == nil || features.StartTLS.Required == nil {
		t.Fatalf("features do not require STARTTLS: %q", raw.String())
	}
	if !strings.Contains(raw.String(), "<starttls") || !strings.Contains(raw.String(), "<required") {
		t.Fatalf("features lack <starttls><required/>: %q", raw.String())
	}

	// The direct TLS port serves the same generated certificate.
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.Timeout}, "tcp", s.direct, s.clientTLS(t))
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	tc.Close()

	// The HTTP listener announces both web transports (XEP-0156) and says
	// how to install the web client, which this working directory lacks.
	for path, want := range map[string]string{
		"/.well-known/host-meta.json": `"href":"ws://` + s.http + `/ws"`,
		"/.well-known/host-meta":      `href="http://` + s.http + `/http-bind"`,
		"/chat/":                      "make web",
	} {
		resp, err := http.Get("http://" + s.http + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %q, want %s", path, resp.StatusCode, b, want)
		}
	}
}

// TestXmppctlWhileRunning adds an account with xmppctl beside the running
// server, on the same SQLite file, and logs in with it.
func TestXmppctlWhileRunning(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)

	if code, out := xmppctl(t, "-data", data, "user", "add", "alice@localhost", "pw"); code != 0 {
		t.Fatalf("xmppctl user add: exit %d: %s", code, out)
	}
	ms, _, err := s.login(t, "alice@localhost", "pw")
	if err != nil {
		t.Fatalf("login with the password xmppctl set: %v", err)
	}
	if got := ms.LocalAddr().Bare().String(); got != "alice@localhost" {
		t.Errorf("bound JID %s, want alice@localhost/…", ms.LocalAddr())
	}
	if err := ms.Close(); err != nil {
		t.Fatal(err)
	}

	if _, _, err := s.login(t, "alice@localhost", "wrong"); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if _, _, err := s.login(t, "nobody@localhost", "pw"); err == nil {
		t.Fatal("login to an account that does not exist succeeded")
	}
}

// startWithAlice runs xmppd with an account alice@localhost (password
// "pw", added by xmppctl) and signs her in.
func startWithAlice(t *testing.T) (*server, *mxmpp.Session, net.Conn) {
	t.Helper()
	data := t.TempDir()
	s := startServer(t, data)
	if code, out := xmppctl(t, "-data", data, "user", "add", "alice@localhost", "pw"); code != 0 {
		t.Fatalf("xmppctl user add: exit %d: %s", code, out)
	}
	ms, conn, err := s.login(t, "alice@localhost", "pw")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return s, ms, conn
}

// TestSIGTERM checks the graceful shutdown: a connected client is told
// <system-shutdown/> and the process exits with status 0.
func TestSIGTERM(t *testing.T) {
	s, ms, conn := startWithAlice(t)

	// The reader goroutine ends when the stream does; closing conn on the
	// way out makes sure it does even if the test fails first.
	readErr := make(chan error, 1)
	go func() {
		r := ms.TokenReader()
		defer r.Close()
		for {
			if _, err := r.Token(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	defer func() {
		conn.Close()
		<-readErr
	}()

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case err := <-readErr:
		readErr <- err // for the deferred drain
		if err == nil || !strings.Contains(err.Error(), "system-shutdown") {
			t.Errorf("client stream ended with %v, want the system-shutdown stream error", err)
		}
	case <-timer.C:
		t.Fatal("client stream still open 10s after SIGTERM")
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Fatalf("xmppd exited with %v after SIGTERM, want status 0", s.waitErr)
		}
	case <-timer.C:
		t.Fatal("xmppd still running 10s after SIGTERM")
	}
	if !strings.Contains(s.log.String(), "msg=stopped") {
		t.Errorf("xmppd did not log a clean stop:\n%s", s.log)
	}
}

// TestSIGTERMAfterSelfInvite is issue 15's hang, from outside: an occupant
// has a room invite the room itself (which once deadlocked the room and the
// inviter's session, and left SIGTERM waiting forever). The inviter is
// still served afterwards, and SIGTERM ends the process within the
// documented 20 s.
func TestSIGTERMAfterSelfInvite(t *testing.T) {
	s, ms, conn := startWithAlice(t)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
	defer cancel()
	send := func(raw string) {
		t.Helper()
		if _, err := io.WriteString(ms.Conn(), raw); err != nil {
			t.Fatalf("send %s: %v", raw, err)
		}
	}
	// What the server sends: elements with an id, and the room's
	// self-presence, until the stream ends.
	ids := make(chan string, 64)
	go func() {
		defer close(ids)
		r := ms.TokenReader()
		defer r.Close()
		for {
			tok, err := r.Token()
			if err != nil {
				return
			}
			st, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			for _, a := range st.Attr {
				ev := ""
				switch {
				case a.Name.Local == "id":
					ev = st.Name.Local + " " + a.Value
				case st.Name.Local == "status" && a.Name.Local == "code" && a.Value == "110":
					ev = "self-presence" // XEP-0045 §7.2.3: in the room
				}
				if ev == "" {
					continue
				}
				select {
				case ids <- ev:
				default: // nobody waits any more
				}
			}
		}
	}()
	waitFor := func(want string) {
		t.Helper()
		for {
			select {
			case id, ok := <-ids:
				if !ok {
					t.Fatalf("stream ended while waiting for %s", want)
				}
				if id == want {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no %s", want)
			}
		}
	}
	const room = "loop@conference.localhost"
	send(`<presence id="join" to="` + room + `/alice"><x xmlns="http://jabber.org/protocol/muc"/></presence>`)
	waitFor("self-presence")
	send(`<message id="inv" to="` + room + `"><x xmlns="http://jabber.org/protocol/muc#user"><invite to="` + room + `"/></x></message>`)
	send(`<iq type="get" id="ping1" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	waitFor("iq ping1")

	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Fatalf("xmppd exited with %v after SIGTERM, want status 0", s.waitErr)
		}
		t.Logf("xmppd exited %v after SIGTERM", time.Since(start))
	case <-time.After(20 * time.Second):
		t.Fatal("xmppd still running 20s after SIGTERM")
	}
}

// TestDocumentedConfig keeps docs/configuration.md honest: every YAML example
// in it loads, and the first, documented as "every option with its default
// value", is exactly the built-in default.
func TestDocumentedConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml examples in docs/configuration.md")
	}
	dir := t.TempDir()
	for i, b := range blocks {
		path := filepath.Join(dir, fmt.Sprintf("example%d.yaml", i))
		if err := os.WriteFile(path, b[1], 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, b[1])
			continue
		}
		if i == 0 && !reflect.DeepEqual(cfg, config.Default()) {
			t.Errorf("the full example is not the default configuration:\n got %+v\nwant %+v", cfg, config.Default())
		}
	}
}

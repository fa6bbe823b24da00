package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// GoSendxmpp is the command of Debian's go-sendxmpp, a command-line client
// that sends a message (or listens for them) and writes a newline after each
// element it sends, so it exercises whitespace between elements during
// negotiation (RFC 6120 §11.7).
const GoSendxmpp = "go-sendxmpp"

// NeedGoSendxmpp skips the test when go-sendxmpp is not installed, and fails
// it when CI=true: in CI every client a test needs must be there.
func NeedGoSendxmpp(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(GoSendxmpp); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (%v): scripts/test-deps.sh installs it (apt-get install go-sendxmpp)", GoSendxmpp, err)
		}
		t.Skipf("%s is missing (%v); run scripts/test-deps.sh or apt-get install go-sendxmpp", GoSendxmpp, err)
	}
}

// GoSendxmppRun is a running go-sendxmpp.
type GoSendxmppRun struct {
	Args   []string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	// out is everything it wrote, stdout and stderr: lines for
	// ExpectLine, and the whole for failure messages.
	out *outputLog
	// next is the offset in out of the first line ExpectLine has not seen.
	next   int
	exited chan struct{}
	err    error
}

// StartGoSendxmpp runs go-sendxmpp as user against the listener at addr (the
// server's C2S for STARTTLS, DirectTLS with directTLS) with args after the
// account's (recipients, -l, -d ...), and stdin (nil: empty) as the message.
//
// go-sendxmpp has no option for a CA file and verifies the server's
// certificate against the system roots, which Go reads from SSL_CERT_FILE
// and SSL_CERT_DIR: they name only the test server's certificate, so the
// verification is real. The account is in a 0600 configuration file given
// with -f, and HOME and the XDG directories are temporary, so it never
// reads the user's ~/.config nor writes there. It runs in a minimal
// environment (no proxy variables: its library would dial through one). The
// process is killed after Timeout and when t ends.
func (s *Server) StartGoSendxmpp(t testing.TB, addr string, directTLS bool, user jid.JID, password string, stdin io.Reader, args ...string) *GoSendxmppRun {
	t.Helper()
	NeedGoSendxmpp(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	certs := filepath.Join(dir, "certs")
	home := filepath.Join(dir, "home")
	for _, d := range []string{certs, home} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// go-sendxmpp(5): "key: value" lines.
	conf := filepath.Join(dir, "sendxmpprc")
	rc := fmt.Sprintf("username: %s\njserver: %s\nport: %s\npassword: %s\n", user.Bare(), host, port, password)
	if err := os.WriteFile(conf, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	full := []string{"-f", conf, "--timeout", fmt.Sprint(int(Timeout.Seconds()))}
	if directTLS {
		full = append(full, "--tls")
	}
	full = append(full, args...)

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	cmd := exec.CommandContext(ctx, GoSendxmpp, full...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"SSL_CERT_FILE=" + ca,
		"SSL_CERT_DIR=" + certs,
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	r := &GoSendxmppRun{Args: full, cmd: cmd, cancel: cancel, out: newOutputLog(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.exited
	})
	return r
}

// Output is everything the client wrote so far, stdout and stderr.
func (r *GoSendxmppRun) Output() string { return r.out.String() }

// Wait waits for the client to exit and returns its exit code; it fails t
// if it was killed for running longer than Timeout.
func (r *GoSendxmppRun) Wait(t testing.TB) int {
	t.Helper()
	<-r.exited
	r.cancel()
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v (killed after %v?); output:\n%s", GoSendxmpp, strings.Join(r.Args, " "), r.err, Timeout, r.Output())
		return -1
	}
}

// ExpectLine waits for a line of output for which match is true and returns
// it; lines before it are passed over. It fails t when the client exits
// first or after Timeout.
func (r *GoSendxmppRun) ExpectLine(t testing.TB, what string, match func(string) bool) string {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		// Read exited before the output, so that after exit nothing is
		// left unread.
		var ended bool
		select {
		case <-r.exited:
			ended = true
		default:
		}
		for {
			line, ok := r.out.line(&r.next, ended)
			if !ok {
				break
			}
			if match(line) {
				return line
			}
		}
		if ended {
			t.Fatalf("%s ended before %s; output:\n%s", GoSendxmpp, what, r.Output())
		}
		select {
		case <-r.out.changed:
		case <-r.exited:
		case <-timer.C:
			t.Fatalf("%s: no %s in time; output:\n%s", GoSendxmpp, what, r.Output())
		}
	}
}

// Stop kills the client (a listening one does not end by itself).
func (r *GoSendxmppRun) Stop() {
	r.cancel()
	<-r.exited
}

// SendGoSendxmpp runs go-sendxmpp as user to send body to the recipients,
// waits for it to exit and returns its exit code and output.
func (s *Server) SendGoSendxmpp(t testing.TB, addr string, directTLS bool, user jid.JID, password, body string, to ...string) (int, string) {
	t.Helper()
	r := s.StartGoSendxmpp(t, addr, directTLS, user, password, strings.NewReader(body), to...)
	code := r.Wait(t)
	return code, r.Output()
}

// outputLog keeps a process's output and says when more came.
type outputLog struct {
	syncBuffer
	changed chan struct{}
}

func newOutputLog() *outputLog { return &outputLog{changed: make(chan struct{}, 1)} }

func (o *outputLog) Write(p []byte) (int, error) {
	n, err := o.syncBuffer.Write(p)
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return n, err
}

// line returns the line that starts at *off and moves *off past it. A last
// line without a newline counts only when final is set (the writer is gone).
func (o *outputLog) line(off *int, final bool) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rest := o.b.Bytes()[*off:]
	if len(rest) == 0 {
		return "", false
	}
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		if !final {
			return "", false
		}
		i = len(rest)
		*off += len(rest)
	} else {
		*off += i + 1
	}
	return strings.TrimRight(string(rest[:i]), "\r"), true
}

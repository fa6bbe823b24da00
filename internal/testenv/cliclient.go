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

// Sendxmpp is the command of Debian's sendxmpp, the Perl client (Net::XMPP)
// that go-sendxmpp imitates.
const Sendxmpp = "sendxmpp"

// NeedGoSendxmpp skips the test when go-sendxmpp is not installed, and fails
// it when CI=true: in CI every client a test needs must be there.
func NeedGoSendxmpp(t testing.TB) {
	t.Helper()
	needCommand(t, GoSendxmpp, "go-sendxmpp")
}

// NeedSendxmpp is NeedGoSendxmpp for sendxmpp.
func NeedSendxmpp(t testing.TB) {
	t.Helper()
	needCommand(t, Sendxmpp, "sendxmpp")
}

// needCommand skips t, or fails it under CI=true, when the command of a
// Debian package is missing.
func needCommand(t testing.TB, command, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(command); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (%v): scripts/test-deps.sh installs it (apt-get install %s)", command, err, pkg)
		}
		t.Skipf("%s is missing (%v); run scripts/test-deps.sh or apt-get install %s", command, err, pkg)
	}
}

// CLIRun is a command-line client running against a test server.
type CLIRun struct {
	// Args are the command and its arguments, for failure messages.
	Args   []string
	cancel context.CancelFunc
	// out is everything it wrote, stdout and stderr: lines for
	// ExpectLine, and the whole for failure messages.
	out *outputLog
	// next is the offset in out of the first line ExpectLine has not seen.
	next   int
	exited chan struct{}
	err    error
}

// cliFiles are the files a client gets in its own temporary directory.
type cliFiles struct {
	dir, home, ca string
}

// newCLIFiles writes the server's certificate into a new temporary
// directory that also holds an empty home.
func (s *Server) newCLIFiles(t testing.TB) cliFiles {
	t.Helper()
	dir := t.TempDir()
	f := cliFiles{dir: dir, home: filepath.Join(dir, "home"), ca: filepath.Join(dir, "ca.pem")}
	if err := os.Mkdir(f.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.ca, s.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// sendxmpprc writes the configuration file both sendxmpp and go-sendxmpp
// read ("key: value" lines, go-sendxmpp(5), sendxmpp(1)) with mode 0600
// (sendxmpp refuses any other) and returns its path.
func (f cliFiles) sendxmpprc(t testing.TB, lines ...string) string {
	t.Helper()
	conf := filepath.Join(f.dir, "sendxmpprc")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// env is a minimal environment: PATH, a temporary HOME and XDG directories
// (so the client never reads the user's ~/.config nor writes there), no
// proxy variables (a client library may dial through one), and extra.
func (f cliFiles) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + f.home,
		"XDG_CONFIG_HOME=" + filepath.Join(f.home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(f.home, ".local", "share"),
	}, extra...)
}

// startCLI runs name with args in env, stdin (nil: empty) as its input;
// it is killed after Timeout and when t ends.
func startCLI(t testing.TB, env []string, stdin io.Reader, name string, args ...string) *CLIRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.Stdin = stdin
	r := &CLIRun{Args: append([]string{name}, args...), cancel: cancel, out: newOutputLog(), exited: make(chan struct{})}
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
	t.Cleanup(r.Stop)
	return r
}

// StartGoSendxmpp runs go-sendxmpp as user against the listener at addr (the
// server's C2S for STARTTLS, DirectTLS with directTLS) with args after the
// account's (recipients, -l, -d ...), and stdin (nil: empty) as the message.
//
// go-sendxmpp has no option for a CA file and verifies the server's
// certificate against the system roots, which Go reads from SSL_CERT_FILE
// and SSL_CERT_DIR: they name only the test server's certificate, so the
// verification is real. The account is in a 0600 configuration file given
// with -f.
func (s *Server) StartGoSendxmpp(t testing.TB, addr string, directTLS bool, user jid.JID, password string, stdin io.Reader, args ...string) *CLIRun {
	t.Helper()
	NeedGoSendxmpp(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	f := s.newCLIFiles(t)
	certs := filepath.Join(f.dir, "certs") // empty: no other roots
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := f.sendxmpprc(t, "username: "+user.Bare().String(), "jserver: "+host, "port: "+port, "password: "+password)
	full := []string{"-f", conf, "--timeout", fmt.Sprint(int(Timeout.Seconds()))}
	if directTLS {
		full = append(full, "--tls")
	}
	return startCLI(t, f.env("SSL_CERT_FILE="+f.ca, "SSL_CERT_DIR="+certs), stdin, GoSendxmpp, append(full, args...)...)
}

// SendGoSendxmpp runs go-sendxmpp as user to send body to the recipients,
// waits for it to exit and returns its exit code and output.
func (s *Server) SendGoSendxmpp(t testing.TB, addr string, directTLS bool, user jid.JID, password, body string, to ...string) (int, string) {
	t.Helper()
	r := s.StartGoSendxmpp(t, addr, directTLS, user, password, strings.NewReader(body), to...)
	return r.Wait(t), r.Output()
}

// SendSendxmpp runs Debian's sendxmpp (Perl) as user to send body to the
// recipients over STARTTLS (its -t, on the server's C2S) or direct TLS (its
// -e, on DirectTLS), trusting the server's certificate with -a, waits for it
// to exit and returns its exit code and output.
func (s *Server) SendSendxmpp(t testing.TB, addr string, directTLS bool, user jid.JID, password, body string, to ...string) (int, string) {
	t.Helper()
	NeedSendxmpp(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	f := s.newCLIFiles(t)
	// Its username is the localpart; "component" is the domain of the
	// stream header, when jserver (where it connects) is not the domain.
	conf := f.sendxmpprc(t, "username: "+user.Localpart(), "jserver: "+host, "port: "+port,
		"password: "+password, "component: "+user.Domainpart())
	tls := "--tls"
	if directTLS {
		tls = "--ssl"
	}
	args := append([]string{"-f", conf, tls, "--tls-ca-path", f.ca}, to...)
	r := startCLI(t, f.env(), strings.NewReader(body), Sendxmpp, args...)
	return r.Wait(t), r.Output()
}

// Output is everything the client wrote so far, stdout and stderr.
func (r *CLIRun) Output() string { return r.out.String() }

// Wait waits for the client to exit and returns its exit code; it fails t
// if it was killed for running longer than Timeout.
func (r *CLIRun) Wait(t testing.TB) int {
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
		t.Fatalf("%s: %v (killed after %v?); output:\n%s", strings.Join(r.Args, " "), r.err, Timeout, r.Output())
		return -1
	}
}

// ExpectLine waits for a line of output for which match is true and returns
// it; lines before it are passed over. It fails t when the client exits
// first or after Timeout.
func (r *CLIRun) ExpectLine(t testing.TB, what string, match func(string) bool) string {
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
			t.Fatalf("%s ended before %s; output:\n%s", r.Args[0], what, r.Output())
		}
		select {
		case <-r.out.changed:
		case <-r.exited:
		case <-timer.C:
			t.Fatalf("%s: no %s in time; output:\n%s", r.Args[0], what, r.Output())
		}
	}
}

// Stop kills the client (a listening one does not end by itself).
func (r *CLIRun) Stop() {
	r.cancel()
	<-r.exited
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

package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// runXmppd runs the built xmppd, in a fresh working directory, with args
// that make it exit by itself, and returns its exit status and output.
func runXmppd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "xmppd"), args...)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("xmppd %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, &out, &errOut)
	return -1, "", ""
}

func TestVersion(t *testing.T) {
	code, out, errOut := runXmppd(t, "-version")
	if code != 0 || errOut != "" {
		t.Fatalf("xmppd -version: status %d, stderr %q; want 0 and nothing", code, errOut)
	}
	want := regexp.MustCompile(`^xmppd \S+ .*` + regexp.QuoteMeta(runtime.Version()) + ` ` + runtime.GOOS + `/` + runtime.GOARCH + "\n$")
	if !want.MatchString(out) {
		t.Errorf("xmppd -version printed %q, want a match for %v", out, want)
	}
}

// TestVersionLdflags builds xmppd as the Dockerfile does, with the version,
// revision and time given to the linker, and expects -version to say them.
func TestVersionLdflags(t *testing.T) {
	dir := t.TempDir()
	ldflags := "-X main.buildVersion=v9.8.7-test -X main.buildRevision=0123abcd -X main.buildTime=2030-01-02T03:04:05Z"
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", dir, "./cmd/xmppd")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(dir, "xmppd"), "-version").Output()
	if err != nil {
		t.Fatalf("xmppd -version: %v", err)
	}
	want := "xmppd v9.8.7-test (revision 0123abcd, 2030-01-02T03:04:05Z) " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if string(out) != want {
		t.Errorf("xmppd -version printed %q, want %q", out, want)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		code, out, errOut := runXmppd(t, arg)
		if code != 0 {
			t.Errorf("xmppd %s: status %d, want 0; stderr %q", arg, code, errOut)
		}
		for _, flag := range []string{"usage: xmppd", "-config", "-check", "-version"} {
			if !strings.Contains(out, flag) {
				t.Errorf("xmppd %s: the usage on stdout lacks %q:\n%s", arg, flag, out)
			}
		}
	}
}

// TestStrayArguments: a word on the command line is refused (status 2)
// rather than ignored, which would start a server nobody asked for.
func TestStrayArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"version"}, `unexpected argument "version": did you mean -version?`},
		{[]string{"start"}, `unexpected argument "start": xmppd takes flags only`},
		{[]string{"-domain", "example.com", "run", "-check"}, `unexpected argument "run"`},
		{[]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"-check=maybe"}, `invalid boolean value "maybe" for -check`},
		{[]string{"-domain"}, "flag needs an argument: -domain"},
	} {
		code, out, errOut := runXmppd(t, tc.args...)
		if code != 2 {
			t.Errorf("xmppd %q: status %d, want 2; stderr %q", tc.args, code, errOut)
		}
		if !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "xmppd -h") {
			t.Errorf("xmppd %q: stderr %q, want %q and a pointer to -h", tc.args, errOut, tc.want)
		}
		if out != "" {
			t.Errorf("xmppd %q: printed %q on stdout", tc.args, out)
		}
	}
}

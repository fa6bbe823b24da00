package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
)

// Build information, set at build time (the Dockerfile does) with
//
//	-ldflags "-X main.buildVersion=v1.2.3 -X main.buildRevision=abc123 -X main.buildTime=2025-01-02T03:04:05Z"
//
// Left unset, each falls back on what the Go toolchain recorded in the
// binary (runtime/debug.ReadBuildInfo): the module version for `go install
// …@v1.2.3`, and the VCS revision and commit time for a build in a git
// checkout.
var (
	buildVersion  = ""
	buildRevision = ""
	buildTime     = ""
)

// build describes this binary.
type build struct {
	Version  string // v1.2.3, or "dev"
	Revision string // VCS revision, or ""
	Time     string // commit or build time, or ""
	Modified bool   // built from a work tree with uncommitted changes
	Go       string // toolchain version, e.g. go1.26.8
}

// buildInfo is this binary's build, the -ldflags values first.
func buildInfo() build {
	b := build{Go: runtime.Version()}
	var version string
	if bi, ok := debug.ReadBuildInfo(); ok {
		// "(devel)" is what a build inside the module's own tree says.
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	b.Version = cmp.Or(buildVersion, version, "dev")
	if buildRevision != "" {
		// A revision given explicitly says nothing of local changes.
		b.Revision, b.Modified = buildRevision, false
	}
	b.Time = cmp.Or(buildTime, b.Time)
	return b
}

// writeVersion prints what -version prints: one line a person reads and
// a bug report can quote.
func writeVersion(w io.Writer, b build) {
	fmt.Fprintf(w, "xmppd %s", b.Version)
	if b.Revision != "" {
		fmt.Fprintf(w, " (revision %s", b.Revision)
		if b.Modified {
			fmt.Fprint(w, ", modified")
		}
		if b.Time != "" {
			fmt.Fprintf(w, ", %s", b.Time)
		}
		fmt.Fprint(w, ")")
	} else if b.Time != "" {
		fmt.Fprintf(w, " (%s)", b.Time)
	}
	fmt.Fprintf(w, " %s %s/%s\n", b.Go, runtime.GOOS, runtime.GOARCH)
}

// usageError is a command line xmppd cannot run: exit status 2, as the
// flag package's own programs do.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// errReported ends xmppd with status 1 after the reason has been printed
// (-check's verdict).
var errReported = errors.New("failure already reported")

// exitStatus reports err on stderr (a log line at level ERROR, or for a bad
// command line the usage hint) and returns the process's exit status:
// 0 for none (and for -h, whose usage went to standard output), 2 for a
// bad command line, 1 for anything else.
func exitStatus(stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 1
	}
	if _, ok := errors.AsType[usageError](err); ok {
		fmt.Fprintln(stderr, "xmppd:", err)
		fmt.Fprintln(stderr, "Run 'xmppd -h' for the flags.")
		return 2
	}
	// In the log's own format, so that whatever reads the log (journald,
	// a collector) sees why the server stopped like any other line.
	slog.New(slog.NewTextHandler(stderr, nil)).Error("xmppd cannot run", "err", err)
	return 1
}

// parseArgs parses the command line into fs. xmppd takes flags only: a
// stray word (`xmppd version`, a flag after a word) is refused rather than
// ignored, since an ignored argument starts a server the user did not ask
// for. -h prints the usage on stdout.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fmt.Fprintln(stdout, "usage: xmppd [flags]\n\nRuns the XMPP server; see docs/configuration.md and docs/deploy.md.\n\nFlags:")
		fs.PrintDefaults()
		return err
	case err != nil:
		return usageError{err}
	case fs.NArg() > 0:
		a := fs.Arg(0)
		if fs.Lookup(a) != nil {
			return usageError{fmt.Errorf("unexpected argument %q: did you mean -%s?", a, a)}
		}
		return usageError{fmt.Errorf("unexpected argument %q: xmppd takes flags only", a)}
	}
	return nil
}

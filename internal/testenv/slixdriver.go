package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// DriverItem is one roster item in a DriverEvent (RFC 6121 §2.1.2).
type DriverItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"` // "" when the attribute is absent
	Ask          string   `json:"ask"`
	Approved     bool     `json:"approved"`
	Groups       []string `json:"groups"`
}

// DriverStanzaID is a XEP-0359 <stanza-id/>.
type DriverStanzaID struct {
	By string `json:"by"`
	ID string `json:"id"`
}

// DriverArchived is one message of an archive query's results (XEP-0313):
// its archive id and the forwarded message.
type DriverArchived struct {
	ID    string `json:"id"`
	From  string `json:"from"`
	To    string `json:"to"`
	Body  string `json:"body"`
	Stamp string `json:"stamp"`
	// RealJID is the jid of the forwarded message's muc#user item: a room
	// archive's sender, for those allowed to see it (XEP-0313 §5.1.2).
	RealJID string `json:"real_jid"`
}

// DriverConference is one conference of XEP-0048 bookmarks.
type DriverConference struct {
	JID      string `json:"jid"`
	Name     string `json:"name"`
	Nick     string `json:"nick"`
	Autojoin bool   `json:"autojoin"`
}

// DriverPEPItem is one item of a node (XEP-0060): its id and payload, as
// slixmpp serialises it.
type DriverPEPItem struct {
	ID  string `json:"id"`
	XML string `json:"xml"`
}

// DriverEvent is one JSON line of slixmpp_driver.py; which fields are set
// depends on Event (the script's doc string lists them). Attributes are as
// the server sent them: Type is "" for available presence and for a message
// without a type. A line that is not JSON arrives as Event "bad_output" with
// the line in Text.
type DriverEvent struct {
	Event string `json:"event"`
	ID    string `json:"id"`
	// JID is the bound full JID (session_start) or the pushed item's JID
	// (roster_push).
	JID      string `json:"jid"`
	From     string `json:"from"`
	To       string `json:"to"`
	Type     string `json:"type"`
	Show     string `json:"show"`
	Status   string `json:"status"`
	Priority int    `json:"priority"`
	Body     string `json:"body"`
	// Delay and DelayFrom are the stamp and from of a urn:xmpp:delay child
	// (XEP-0203), "" without one.
	Delay     string `json:"delay"`
	DelayFrom string `json:"delay_from"`
	// StanzaIDs are a message's XEP-0359 stanza-ids.
	StanzaIDs []DriverStanzaID `json:"stanza_ids"`
	// Results are the archived messages of mam_results, as the plugin
	// yielded them.
	Results []DriverArchived `json:"results"`

	// Roster results and pushes. Empty is a result without <query/>
	// (RFC 6121 §2.6.3: the roster is unchanged since Ver); HasVer tells an
	// absent ver attribute from an empty one.
	Ver    string       `json:"ver"`
	HasVer bool         `json:"has_ver"`
	Empty  bool         `json:"empty"`
	Items  []DriverItem `json:"items"`
	// The first pushed item, for roster_push.
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Ask          string   `json:"ask"`
	Approved     bool     `json:"approved"`
	Groups       []string `json:"groups"`

	// Kind ("presence" or "message"), Condition and Text describe errors.
	Kind      string `json:"kind"`
	Condition string `json:"condition"`
	Text      string `json:"text"`
	Reason    string `json:"reason"`
	// Conferences are the bookmarks read from private storage
	// (bookmarks_get).
	Conferences []DriverConference `json:"conferences"`
	// URL is where an upload (XEP-0363) can be fetched.
	URL string `json:"url"`
	// XML is the received stanza as slixmpp serialises it.
	XML string `json:"xml"`

	// A pubsub publish (pubsub_service): the publish's node, the fields of
	// the item's data form (first values) and of its publish-options.
	Node    string              `json:"node"`
	Summary map[string]string   `json:"summary"`
	Options map[string][]string `json:"options"`
	// PEPItems are the items of a notification (pubsub_event) or of a
	// retrieval (pep_items); Retracted the ids a notification retracts.
	// Ver is the client's capabilities hash (caps, XEP-0115).
	PEPItems  []DriverPEPItem `json:"pep_items"`
	Retracted []string        `json:"retracted"`

	// Service discovery (disco_info; XEP-0030): the identities as
	// "category/type", the features, and the extended information forms
	// (XEP-0128) by FORM_TYPE, each its fields' values by var.
	Identities []string                       `json:"identities"`
	Features   []string                       `json:"features"`
	Forms      map[string]map[string][]string `json:"forms"`

	// Stream management (--sm; XEP-0198): Resume and Max of sm_enabled
	// (whose ID is the stream's resumption id, as it is resumed's), H of
	// resumed (the server's count of handled stanzas) and cut (the
	// client's), Bytes of held and cut (the data kept aside by hold).
	Resume bool   `json:"resume"`
	Max    string `json:"max"`
	H      int    `json:"h"`
	Bytes  int    `json:"bytes"`
}

// Driver is a running slixmpp_driver.py: a real client that sends only what
// the test tells it to (Do) and reports every stanza it gets (Expect).
type Driver struct {
	// JID is the full JID the server bound.
	JID jid.JID
	// RegisterError is, with --register, the condition of the refused
	// registration (XEP-0077): the driver then ends without a session.
	RegisterError string

	cmd    *exec.Cmd
	mu     sync.Mutex // serialises writes to stdin
	stdin  io.WriteCloser
	events chan DriverEvent
	exited chan struct{} // closed when the process has ended and err is set
	err    error
	stderr *syncBuffer
}

// StartDriver runs slixmpp_driver.py as user (with resource, if not empty)
// against s and waits for its session to start; opts are more command-line
// flags, e.g. "--mode", "directtls" (which also selects s.DirectTLS),
// "--mech", "PLAIN", "--sm" (XEP-0198 stream management) or "--register"
// (create the account first, XEP-0077). It fails t if the session does not
// start, unless the registration was refused (Driver.RegisterError). The client
// is stopped when t ends.
func (s *Server) StartDriver(t testing.TB, user jid.JID, password, resource string, opts ...string) *Driver {
	t.Helper()
	addr := s.C2S
	for i, o := range opts {
		if o == "--mode=directtls" || o == "--mode" && i+1 < len(opts) && opts[i+1] == "directtls" {
			addr = s.DirectTLS
		}
	}
	return StartDriverAt(t, addr, s.CertPEM, user, password, resource, opts...)
}

// StartDriverAt is StartDriver against any server: addr is its c2s address
// and certPEM the certificate to trust.
func StartDriverAt(t testing.TB, addr string, certPEM []byte, user jid.JID, password, resource string, opts ...string) *Driver {
	t.Helper()
	NeedSlixmpp(t)
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "slixmpp_driver.py")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	args := []string{script, "--host", "127.0.0.1", "--port", port, "--cafile", ca,
		"--timeout", fmt.Sprint(Timeout.Seconds()),
		"--jid", user.Bare().String(), "--password", password}
	if resource != "" {
		args = append(args, "--resource", resource)
	}
	cmd := exec.Command(Python, append(args, opts...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &Driver{cmd: cmd, stdin: stdin, events: make(chan DriverEvent, 256), exited: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev DriverEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = DriverEvent{Event: "bad_output", Text: fmt.Sprintf("%v: %s", err, sc.Bytes())}
			}
			d.events <- ev
		}
		close(d.events)
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(d.stop)

	timer := time.NewTimer(Timeout + 5*time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-d.events:
			if !ok {
				t.Fatalf("slixmpp driver %s ended before session_start; stderr:\n%s", user, d.stderr)
			}
			switch ev.Event {
			case "session_start":
				d.JID, err = jid.Parse(ev.JID)
				if err != nil {
					t.Fatalf("slixmpp driver bound %q: %v", ev.JID, err)
				}
				return d
			case "register_error":
				d.RegisterError = ev.Condition
				return d
			case "auth_failed", "timeout", "disconnected", "stream_error":
				t.Fatalf("slixmpp driver %s: %+v; stderr:\n%s", user, ev, d.stderr)
			}
		case <-timer.C:
			t.Fatalf("slixmpp driver %s: no session_start in time; stderr:\n%s", user, d.stderr)
		}
	}
}

// stop ends the client: the end of stdin makes it close its stream; if it
// has not exited a second later it is killed.
func (d *Driver) stop() {
	d.mu.Lock()
	d.stdin.Close()
	d.mu.Unlock()
	grace := time.AfterFunc(time.Second, func() { d.cmd.Process.Kill() })
	for range d.events {
	}
	<-d.exited
	grace.Stop()
}

// Do sends one command (a JSON object with "cmd"; see slixmpp_driver.py),
// for example {"cmd": "presence"} or {"cmd": "roster_get", "ver": ""}.
func (d *Driver) Do(t testing.TB, cmd map[string]any) {
	t.Helper()
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("slixmpp driver %s: %v; stderr:\n%s", d.JID, err, d.stderr)
	}
}

// Expect waits for the next event of the given kind for which match (nil:
// any) is true. Events before it that do not match are dropped (and
// logged), so expect events in the order they arrive. It fails t on a
// command_error, on the end of the client, or after Timeout+5s.
func (d *Driver) Expect(t testing.TB, event string, match func(DriverEvent) bool) DriverEvent {
	t.Helper()
	timer := time.NewTimer(Timeout + 5*time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-d.events:
			if !ok {
				t.Fatalf("slixmpp driver %s ended before %q; stderr:\n%s", d.JID, event, d.stderr)
			}
			if ev.Event == event && (match == nil || match(ev)) {
				return ev
			}
			if ev.Event == "command_error" {
				t.Fatalf("slixmpp driver %s: %s", d.JID, ev.Text)
			}
			t.Logf("slixmpp driver %s: waiting for %q, skipped %+v", d.JID, event, ev)
		case <-timer.C:
			t.Fatalf("slixmpp driver %s: no matching %q in time; stderr:\n%s", d.JID, event, d.stderr)
		}
	}
}

// Answer returns the next event, the answer to a command sent to a client
// that is sent nothing else, whatever its kind (a result or an iq_error),
// failing t when none comes in time.
func (d *Driver) Answer(t testing.TB) DriverEvent {
	t.Helper()
	ev, ok := d.Next(t, Timeout)
	if !ok {
		t.Fatalf("slixmpp driver %s ended without an answer; stderr:\n%s", d.JID, d.stderr)
	}
	return ev
}

// Next returns the next event, whatever its kind, failing t when none
// comes within timeout; ok is false when the client has ended.
func (d *Driver) Next(t testing.TB, timeout time.Duration) (ev DriverEvent, ok bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev, ok = <-d.events:
		return ev, ok
	case <-timer.C:
		t.Fatalf("slixmpp driver %s: no event within %v; stderr:\n%s", d.JID, timeout, d.stderr)
		return DriverEvent{}, false
	}
}

// ExpectNone fails t if an event of the given kind for which match (nil:
// any) is true arrives within wait. Other events are dropped.
func (d *Driver) ExpectNone(t testing.TB, event string, match func(DriverEvent) bool, wait time.Duration) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-d.events:
			if !ok {
				return
			}
			if ev.Event == event && (match == nil || match(ev)) {
				t.Fatalf("slixmpp driver %s: unexpected %+v", d.JID, ev)
			}
		case <-timer.C:
			return
		}
	}
}

// Wait waits for the client to exit (after quit or abort) and returns its
// exit status: 0 after quit, abort or the end of stdin, 1 when
// authentication failed, 2 when the session did not start in time, 3 when
// the server ended the connection. Remaining events are dropped.
func (d *Driver) Wait(t testing.TB) int {
	t.Helper()
	timer := time.NewTimer(Timeout + 5*time.Second)
	defer timer.Stop()
	for ended := false; !ended; {
		select {
		case _, ok := <-d.events:
			ended = !ok
		case <-timer.C:
			t.Fatalf("slixmpp driver %s did not exit; stderr:\n%s", d.JID, d.stderr)
		}
	}
	<-d.exited // stdout closes as the process ends
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	return 0
}

// syncBuffer is a LogBuffer for a process's output, read trimmed.
type syncBuffer struct{ LogBuffer }

func (b *syncBuffer) String() string { return strings.TrimSpace(b.LogBuffer.String()) }

package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/xmpp"
)

// client is a signed-in mellium session and its connection, on which
// waits get a deadline.
type client struct {
	*mxmpp.Session
	conn net.Conn
}

func signIn(t *testing.T, s *server, user string) client {
	t.Helper()
	ms, conn, err := s.login(t, user, "pw")
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return client{ms, conn}
}

// await reads c's stream until match holds, for at most testenv.Timeout.
func (c client) await(t *testing.T, match func(*xmpp.Element) bool) *xmpp.Element {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(testenv.Timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	return expect(t, c.Session, match)
}

// raw writes XML to c's stream.
func (c client) raw(t *testing.T, x string) {
	t.Helper()
	if _, err := io.WriteString(c.Conn(), x); err != nil {
		t.Fatalf("send %s: %v", x, err)
	}
}

// chat sends a chat message with id and body to.
func (c client) chat(t *testing.T, to, id, body string) {
	t.Helper()
	c.raw(t, fmt.Sprintf(`<message type="chat" to="%s" id="%s"><body>%s</body></message>`, to, id, body))
}

// gets waits for a message with body.
func (c client) gets(t *testing.T, body string) {
	t.Helper()
	c.await(t, func(el *xmpp.Element) bool {
		b := el.Child("", "body")
		return el.Local == "message" && el.Get("type") != "error" && b != nil && b.Text() == body
	})
}

// outcome sends a ping after a stanza with id and returns the error the
// stanza got, or nil when the ping's answer came first: stanzas of one
// session are handled in order, and storing offline returns once the
// message is durable, so the answer means the stanza was taken.
func (c client) outcome(t *testing.T, id string) *xmpp.Element {
	t.Helper()
	c.raw(t, `<iq type="get" id="after-`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	el := c.await(t, func(el *xmpp.Element) bool {
		return (el.Get("type") == "error" && el.Get("id") == id) || el.Get("id") == "after-"+id
	})
	if el.Get("id") == id {
		return el
	}
	return nil
}

// online sends initial presence and asks for the roster, so that the
// session gets roster pushes (RFC 6121 §2.1.6: an interested resource).
func (c client) online(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := c.Send(ctx, stanza.IQ{ID: "roster", Type: stanza.GetIQ}.Wrap(xmlstream.Wrap(nil,
		xml.StartElement{Name: xml.Name{Space: xmpp.NSRoster, Local: "query"}}))); err != nil {
		t.Fatal(err)
	}
	c.await(t, func(el *xmpp.Element) bool { return el.Get("id") == "roster" })
	if err := c.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	c.await(t, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.LocalAddr().String()
	})
}

// stanzaCondition is the defined condition of an error stanza.
func stanzaCondition(el *xmpp.Element) string {
	e := el.Child("", "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Elements() {
		if c.Space == xmpp.NSStanzas && c.Local != "text" {
			return c.Local
		}
	}
	return ""
}

// readyz is the admin listener's readiness status code.
func (s *server) readyz(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// saslOutcome signs in as user (a localpart) with PLAIN on a raw stream and returns the
// server's answer: <success/> or the <failure/>.
func (s *server) saslOutcome(t *testing.T, user, password string) *xmpp.Element {
	t.Helper()
	ts := testenv.StartTLSAt(t, s.c2s, s.clientTLS(t))
	defer ts.Close()
	io.WriteString(ts, testenv.PlainAuth(user, password))
	el, err := ts.Next()
	if err != nil {
		t.Fatalf("SASL PLAIN as %s: %v", user, err)
	}
	return el
}

// startOnPostgres runs xmppd, one node, with its storage in the Postgres
// database dsn; extra is YAML appended to its configuration.
func startOnPostgres(t *testing.T, dsn, extra string) *server {
	t.Helper()
	data := t.TempDir()
	conf := filepath.Join(data, "xmppd.yaml")
	err := os.WriteFile(conf, fmt.Appendf(nil, "domain: localhost\nstorage:\n  backend: postgres\n  postgres_dsn: %q\n%s", dsn, extra), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, data, "-config", conf)
}

// TestPostgresRestart restarts xmppd's Postgres (a private one) under
// signed-in users (issue 21, storage faults). While it is down:
// /readyz says not ready; alice and bob, online, go on chatting; new
// sign-ins fail with <temporary-auth-failure/> and do not count as
// failures (with limits of 2, four of them leave carol and the address
// free); a message and an IQ to dave, offline, are refused to alice with
// internal-server-error rather than taken and dropped. Meanwhile bob joins
// alice's team by SQL while no watch can hear it. When Postgres is back,
// without a restart of xmppd: /readyz is ready, carol signs in, alice and
// bob get the roster pushes of the team change (the watch resynchronised),
// and dave gets the message that was stored before the restart.
func TestPostgresRestart(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	addAccounts(t, st, "", "alice@localhost", "bob@localhost", "carol@localhost", "dave@localhost")
	if err := st.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddMember(ctx, "eng", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	s := startOnPostgres(t, pg.DSN(), "auth:\n  max_failures: 2\n  max_account_failures: 2\n  failure_window: 1h\n")
	alice, bob := signIn(t, s, "alice@localhost"), signIn(t, s, "bob@localhost")
	alice.online(t)
	bob.online(t)
	alice.chat(t, "dave@localhost", "kept", "stored before the restart")
	if el := alice.outcome(t, "kept"); el != nil {
		t.Fatalf("a message to dave, offline, with Postgres up: %s", el)
	}
	if code := s.readyz(t); code != http.StatusOK {
		t.Fatalf("/readyz %d before the restart", code)
	}

	pg.Stop()
	await(t, "/readyz to say not ready", func() bool { return s.readyz(t) == http.StatusServiceUnavailable })

	alice.chat(t, bob.LocalAddr().String(), "d1", "while the database is away")
	bob.gets(t, "while the database is away")
	bob.chat(t, "alice@localhost", "d2", "still here")
	alice.gets(t, "still here")

	for i := range 4 {
		el := s.saslOutcome(t, "carol", "pw")
		if el.Local != "failure" || el.Child("", "temporary-auth-failure") == nil {
			t.Fatalf("sign-in %d while Postgres is down: %s; want <failure><temporary-auth-failure/>", i+1, el)
		}
	}

	alice.chat(t, "dave@localhost", "lost", "sent while the database is away")
	el := alice.outcome(t, "lost")
	if el == nil || stanzaCondition(el) != string(xmpp.InternalError) {
		t.Fatalf("a message to offline dave while Postgres is down was taken (%v); want an internal-server-error back", el)
	}

	alice.raw(t, `<iq type="get" to="dave@localhost" id="vcard-down"><vCard xmlns="vcard-temp"/></iq>`)
	el = alice.await(t, func(el *xmpp.Element) bool { return el.Get("id") == "vcard-down" })
	if stanzaCondition(el) != string(xmpp.InternalError) {
		t.Fatalf("an IQ to offline dave while Postgres is down: %s; want internal-server-error", el)
	}

	// The app adds bob to alice's team while xmppd cannot reach the
	// database (TCP off), so no NOTIFY reaches any watch.
	pg.StartSocketOnly()
	pg.Exec(`INSERT INTO group_members (group_id, jid) VALUES ('eng', 'bob@localhost')`)
	pg.Stop()
	pg.Start()

	await(t, "/readyz to say ready", func() bool { return s.readyz(t) == http.StatusOK })
	var carolErr error
	await(t, "carol to sign in after the restart", func() bool {
		var ms *mxmpp.Session
		ms, _, carolErr = s.login(t, "carol@localhost", "pw")
		if carolErr != nil {
			t.Logf("carol: %v", carolErr)
			return false
		}
		ms.Close()
		return true
	})

	pushed := func(c client, contact string) {
		t.Helper()
		push := c.await(t, func(el *xmpp.Element) bool {
			q := el.Child(xmpp.NSRoster, "query")
			if el.Local != "iq" || el.Get("type") != "set" || q == nil {
				return false
			}
			it := q.Child(xmpp.NSRoster, "item")
			return it != nil && it.Get("jid") == contact
		})
		it := push.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item")
		if g := it.Child(xmpp.NSRoster, "group"); it.Get("subscription") != "both" || g == nil || g.Text() != "Engineering" {
			t.Errorf("%s's push for %s: %s", c.LocalAddr().Bare(), contact, push)
		}
	}
	pushed(alice, "bob@localhost")
	pushed(bob, "alice@localhost")

	dave := signIn(t, s, "dave@localhost")
	if err := dave.Send(ctx, xmlPresence()); err != nil {
		t.Fatal(err)
	}
	dave.gets(t, "stored before the restart")

	alice.chat(t, bob.LocalAddr().String(), "a1", "after the restart")
	bob.gets(t, "after the restart")
}

// needRoot skips t, or fails it under CI=true, unless it runs as root with
// the right to mount: a full or read-only file system cannot be made any
// other way (chmod does nothing against root).
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s needs root (CI=true)", what)
	}
	t.Skipf("%s needs root", what)
}

// mountOrSkip runs mount with args; when that is not allowed here (a
// container without CAP_SYS_ADMIN) the test is skipped, or fails under
// CI=true.
func mountOrSkip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount %v: %v\n%s (CI=true)", args, err, out)
		}
		t.Skipf("mount %v: %v\n%s", args, err, out)
	}
}

// unmount is a cleanup that unmounts dir once the processes that used it
// have ended.
func unmount(t *testing.T, dir string) {
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// fill writes to a file in dir until the file system is full, and
// returns the file's name.
func fill(t *testing.T, dir string, limit int64) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for n := int64(0); ; n += int64(len(chunk)) {
		if n > limit {
			t.Fatalf("wrote %d bytes to %s and it is not full", n, dir)
		}
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return name
		}
	}
}

// TestDataDirFull runs xmppd on embedded storage in a data directory on a
// small tmpfs, and fills it under signed-in users (issue 21, storage
// faults). Messages to dave, offline, are either stored (SQLite may have
// room in pages it has) or refused to the sender with internal-server-error
// — and some are refused, or the file system was never full for SQLite.
// Online delivery goes on, the server does not crash, and once space is
// freed storing works again: dave gets every message that was not refused,
// and none that was.
func TestDataDirFull(t *testing.T) {
	needRoot(t, "filling a file system")
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	const size = 16 << 20
	mountOrSkip(t, "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", data)
	unmount(t, data) // after the server is killed: cleanups run last first
	s := startServer(t, data)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if code, out := xmppctl(t, "-data", data, "user", "add", u+"@localhost", "pw"); code != 0 {
			t.Fatalf("xmppctl user add %s: exit %d: %s", u, code, out)
		}
	}
	alice, bob := signIn(t, s, "alice@localhost"), signIn(t, s, "bob@localhost")
	alice.online(t)
	bob.online(t)

	var kept []string
	alice.chat(t, "dave@localhost", "k0", "before the disk filled")
	if el := alice.outcome(t, "k0"); el != nil {
		t.Fatalf("a message to offline dave with room on the disk: %s", el)
	}
	kept = append(kept, "before the disk filled")

	filler := fill(t, data, size)
	body := strings.Repeat("x", 4000)
	refused := false
	for i := 0; i < 500 && !refused; i++ {
		id := fmt.Sprintf("f%d", i)
		text := fmt.Sprintf("%d %s", i, body)
		alice.chat(t, "dave@localhost", id, text)
		el := alice.outcome(t, id)
		switch {
		case el == nil:
			kept = append(kept, text)
		case stanzaCondition(el) == string(xmpp.InternalError):
			refused = true
		default:
			t.Fatalf("message %d to offline dave on a full disk: %s", i, el)
		}
	}
	if !refused {
		t.Fatalf("500 messages of 4 KB to offline dave on a full %d-byte file system were all taken", size)
	}
	t.Logf("the disk took %d messages after it was full, then refused one", len(kept)-1)

	alice.chat(t, bob.LocalAddr().String(), "o1", "online while the disk is full")
	bob.gets(t, "online while the disk is full")
	bob.chat(t, alice.LocalAddr().String(), "o2", "and back")
	alice.gets(t, "and back")
	signIn(t, s, "carol@localhost").online(t) // signing in only reads

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	alice.chat(t, "dave@localhost", "k1", "after space was freed")
	if el := alice.outcome(t, "k1"); el != nil {
		t.Fatalf("a message to offline dave after space was freed: %s", el)
	}
	kept = append(kept, "after space was freed")

	select {
	case <-s.exited:
		t.Fatalf("xmppd exited: %v", s.waitErr)
	default:
	}
	offlineExactly(t, s, alice, "dave@localhost", kept...)
	if testing.Verbose() {
		t.Logf("xmppd stderr:\n%s", s.log)
	}
}

// TestDataDirReadOnly runs xmppd on embedded storage in a data directory
// on an ext4 file system of the test's own (a loop device) that turns
// read-only under it, as the kernel does on an I/O error
// (errors=remount-ro; the test triggers one through sysfs). A tmpfs cannot
// be used: Linux refuses `mount -o remount,ro` while a process has a file
// there open for writing (EBUSY), and SQLite always has. A message to dave,
// offline, is refused to the sender with internal-server-error; online
// delivery goes on; the server does not crash and stops cleanly. A
// file system the kernel made read-only stays so until it is unmounted,
// so "rw restored" is: stop xmppd, fsck, mount again, start xmppd; then
// storing works again and dave gets what was stored before, and only that.
func TestDataDirReadOnly(t *testing.T) {
	needRoot(t, "a read-only file system")
	dir := t.TempDir()
	img, data := filepath.Join(dir, "ext4.img"), filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"truncate", "-s", "64M", img}, {"mkfs.ext4", "-q", "-F", img}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%v: %v\n%s (CI=true)", c, err, out)
			}
			t.Skipf("%v: %v\n%s", c, err, out)
		}
	}
	mountOrSkip(t, "-o", "loop,errors=remount-ro", img, data)
	unmount(t, data)
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", data).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", data, err)
	}
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(out))), "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s: %v (CI=true)", trigger, err)
		}
		t.Skipf("no %s: %v", trigger, err)
	}

	s := startServer(t, data)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		if code, out := xmppctl(t, "-data", data, "user", "add", u+"@localhost", "pw"); code != 0 {
			t.Fatalf("xmppctl user add %s: exit %d: %s", u, code, out)
		}
	}
	alice, bob := signIn(t, s, "alice@localhost"), signIn(t, s, "bob@localhost")
	alice.online(t)
	bob.online(t)
	alice.chat(t, "dave@localhost", "k0", "before the disk went read-only")
	if el := alice.outcome(t, "k0"); el != nil {
		t.Fatalf("a message to offline dave on a writable disk: %s", el)
	}

	if err := os.WriteFile(trigger, []byte("1"), 0); err != nil {
		t.Fatalf("trigger an ext4 error: %v", err)
	}
	await(t, "the file system to turn read-only", func() bool {
		err := os.WriteFile(filepath.Join(data, "probe"), nil, 0o600)
		return errors.Is(err, syscall.EROFS)
	})
	for i := range 3 {
		id := fmt.Sprintf("r%d", i)
		alice.chat(t, "dave@localhost", id, "while the disk is read-only")
		if el := alice.outcome(t, id); el == nil || stanzaCondition(el) != string(xmpp.InternalError) {
			t.Fatalf("message %d to offline dave on a read-only disk: %v; want internal-server-error back", i, el)
		}
	}
	alice.chat(t, bob.LocalAddr().String(), "o1", "online while the disk is read-only")
	bob.gets(t, "online while the disk is read-only")
	bob.chat(t, alice.LocalAddr().String(), "o2", "and back")
	alice.gets(t, "and back")
	signIn(t, s, "carol@localhost").online(t) // signing in only reads

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			t.Errorf("xmppd exited with %v after SIGTERM on a read-only disk, want status 0", s.waitErr)
		}
	case <-time.After(testenv.Timeout):
		t.Fatal("xmppd still running after SIGTERM on a read-only disk")
	}
	if testing.Verbose() {
		t.Logf("xmppd stderr while read-only:\n%s", s.log)
	}
	if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	// e2fsck exits 1 when it corrected something, as it may after the error.
	if out, err := exec.Command("e2fsck", "-f", "-y", img).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, data).CombinedOutput(); err != nil {
		t.Fatalf("mount again: %v\n%s", err, out)
	}

	s = startServer(t, data)
	alice = signIn(t, s, "alice@localhost")
	alice.chat(t, "dave@localhost", "k1", "after the disk is writable again")
	if el := alice.outcome(t, "k1"); el != nil {
		t.Fatalf("a message to offline dave once the disk is writable again: %s", el)
	}
	offlineExactly(t, s, alice, "dave@localhost", "before the disk went read-only", "after the disk is writable again")
}

// offlineExactly signs user in and checks that the messages kept for it
// offline are want, in order, and nothing else: a message from sender sent
// now comes next, so a refused message did not come after all.
func offlineExactly(t *testing.T, s *server, sender client, user string, want ...string) {
	t.Helper()
	c := signIn(t, s, user)
	if err := c.Send(context.Background(), xmlPresence()); err != nil {
		t.Fatal(err)
	}
	next := func() string {
		got := c.await(t, func(el *xmpp.Element) bool { return el.Local == "message" && el.Child("", "body") != nil })
		return got.Child("", "body").Text()
	}
	for _, w := range want {
		if b := next(); b != w {
			t.Fatalf("%s's next offline message is %.40q, want %.40q", user, b, w)
		}
	}
	sender.chat(t, user, "end", "the last one")
	if b := next(); b != "the last one" {
		t.Fatalf("%s got %.40q after the messages that were kept; want only those", user, b)
	}
}

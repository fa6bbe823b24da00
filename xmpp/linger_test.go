package xmpp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// recordingConn is a connection that keeps what is written to it and counts
// the writes.
type recordingConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	writes   int
	data     bytes.Buffer
	changed  chan struct{}
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.data.Write(b)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recordingConn) Close() error                     { return nil }

// waitFor waits until what was written contains want, and returns the
// number of writes then.
func (c *recordingConn) waitFor(t *testing.T, want string) (int, string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		data, n := c.data.String(), c.writes
		c.mu.Unlock()
		if strings.Contains(data, want) {
			return n, data
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%q never written; written: %q", want, data)
		}
	}
}

func lingerSession(t *testing.T) (*Session, *recordingConn) {
	t.Helper()
	s := &Server{Domain: "example.com", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.init()
	rc := &recordingConn{changed: make(chan struct{}, 1)}
	j := jid.MustParse("alice@example.com/desk")
	sess := &Session{srv: s, jid: j, full: j.String(), bare: j.Bare().String(),
		closing: make(chan struct{}), live: true, writerDone: make(chan struct{})}
	sess.cur.Store(&conn{srv: s, raw: rc, guard: &guard{Conn: rc}})
	return sess, rc
}

// Presence that arrives a millisecond apart, as colleagues sign in at
// nine, shares writes, and is written even when nothing follows it.
func TestPresenceShareWrites(t *testing.T) {
	sess, rc := lingerSession(t)
	const n = 10
	for i := range n {
		sess.sendPresence([]byte(`<presence from="c` + itoa(i) + `@example.com/r"/>`))
		time.Sleep(time.Millisecond) // the load's shape, not a wait
	}
	writes, _ := rc.waitFor(t, `from="c9@example.com/r"`)
	if writes >= n/2 {
		t.Errorf("%d presences took %d writes; they should share them", n, writes)
	}
}

// Anything but presence is written at once, and takes the presence that
// waits with it, in order.
func TestPresenceGoesWithNextStanza(t *testing.T) {
	sess, rc := lingerSession(t)
	sess.sendPresence([]byte(`<presence from="c@example.com/r"/>`))
	sess.sendBytes([]byte(`<message id="m"/>`))
	writes, data := rc.waitFor(t, `<message id="m"/>`)
	if writes != 1 {
		t.Errorf("%d writes for a presence and the message after it, want 1", writes)
	}
	if want := `<presence from="c@example.com/r"/><message id="m"/>`; data != want {
		t.Errorf("written %q, want %q", data, want)
	}
}

// Presence waiting when the session closes is written before the end of
// the stream.
func TestPresenceBeforeClose(t *testing.T) {
	sess, rc := lingerSession(t)
	sess.sendPresence([]byte(`<presence from="c@example.com/r"/>`))
	sess.Close(nil)
	_, data := rc.waitFor(t, `</stream:stream>`)
	if want := `<presence from="c@example.com/r"/></stream:stream>`; data != want {
		t.Errorf("written %q, want %q", data, want)
	}
}

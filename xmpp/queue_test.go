package xmpp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// A client that never reads is cut off once the bytes waiting for it pass
// the queue's byte bound, long before the stanza count bound, and the
// server's memory stays bounded meanwhile: 20 senders of 200 KB messages
// once raised the resident set by 100 MB in 40 s without cutting the reader
// off.
func TestSlowReaderBytesBound(t *testing.T) {
	const (
		queueBytes = 1 << 20
		senders    = 20
		perSender  = 20 // at most 80 MB in all, if nothing cut the reader off
		bodySize   = 200 << 10
		// rssBound is what the server (and the test's own clients, in the
		// same process) may grow by: the bound queue, each connection's
		// 200 KB stanza in flight in both directions, and the garbage
		// collector's headroom; four times that under the race detector.
		rssBound = 64 << 20
	)
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) { s.QueueBytes = queueBytes })
	slowJID := s.AddUser(t, "slow", "pw")
	ended := make(chan struct{})
	var once sync.Once
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		if sess.JID().Bare().Equal(slowJID) {
			once.Do(func() { close(ended) })
		}
	})
	// The slow reader binds and then reads nothing at all.
	st := s.StartTLS(t, "127.0.0.30")
	io.WriteString(st, testenv.PlainAuth("slow", "pw"))
	if el, err := st.Next(); err != nil || el.Local != "success" {
		t.Fatalf("auth: %v %v", el, err)
	}
	d := restartRaw(t, st)
	io.WriteString(st, `<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r</resource></bind></iq>`)
	if el := next(t, d); el.Get("type") != "result" {
		t.Fatalf("bind: %s", el)
	}
	var clients []*testenv.Client
	for i := 0; i < senders; i++ {
		clients = append(clients, s.Dial(t, s.AddUser(t, fmt.Sprint("sender", i), "pw"), "pw", "r"))
	}
	msg := `<message type="headline" to="slow@localhost/r"><body>` + strings.Repeat("b", bodySize) + `</body></message>`

	base := rss(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := rss(t); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var sent atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				select {
				case <-ended:
					return
				default:
				}
				c.SendRaw(t, msg)
				sent.Add(1)
			}
		}()
	}
	select {
	case <-ended:
	case <-time.After(testenv.Timeout):
		t.Fatalf("slow reader not cut off after %d messages of %d KB", sent.Load(), bodySize>>10)
	}
	// The server gives a client that does not read 2 s to take what is
	// queued and the stream error: the slow reader starts reading now,
	// not once the senders are done, which on a loaded machine took longer.
	tail := make(chan []byte, 1)
	go func() {
		st.SetReadDeadline(time.Now().Add(testenv.Timeout))
		rest, _ := io.ReadAll(st)
		tail <- rest
	}()
	wg.Wait()
	close(stop)
	<-sampled
	grew := peak.Load() - base
	bound := int64(rssBound)
	if raceEnabled {
		bound *= 4
	}
	t.Logf("slow reader cut off after %d messages of %d KB were written to the server; resident set grew by %.1f MB at most (bound %d MB)",
		sent.Load(), bodySize>>10, float64(grew)/(1<<20), bound>>20)
	if grew > bound {
		t.Fatalf("resident set grew by %d MB, more than %d MB", grew>>20, bound>>20)
	}
	// That it was cut off at all is the byte bound's doing: the 400
	// messages are fewer than the queue's stanza bound (1,024). How many
	// the senders wrote first says little: the kernel's socket buffers
	// take a lot of them before the server reads any.
	// The stream error says why, after what was queued, if the client
	// takes it: the server gives a client that is cut off 2 s, after which
	// it closes the connection without the stream's end. This client reads
	// nothing until its session has ended, which comes after that wait
	// unless the socket buffers took the queue and the error meanwhile
	// (they usually do; on a loaded machine not always). So: a stream
	// that ends properly must end with the error; one that was cut must
	// have been cut, not ended otherwise.
	rest := string(<-tail)
	switch {
	case strings.HasSuffix(rest, "</stream:stream>"):
		if !strings.Contains(rest[max(0, len(rest)-1024):], "resource-constraint") {
			t.Fatalf("the stream ended without resource-constraint: %q", rest[max(0, len(rest)-300):])
		}
	case strings.Contains(rest, "</stream:stream>"):
		t.Fatalf("the stream's end came before the last %d bytes", len(rest)-strings.LastIndex(rest, "</stream:stream>"))
	default:
		t.Logf("the server gave up writing to the slow reader after 2 s (%d bytes read): no stream end, as intended", len(rest))
	}
	s.Others(t)
}

// rss is the process's resident set in bytes.
func rss(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

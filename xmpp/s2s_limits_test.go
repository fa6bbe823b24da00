package xmpp_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// Texts of the bounces for attempts refused a place in the queue
// (xmpp.s2sBounce).
const (
	textSenderQueueFull = "you have too many connections to other servers being set up"
	textQueueFull       = "too many connections to other servers are being set up"
)

// TestFederationConnectLimitPerSender: one user sends a message to each of
// 300 domains whose servers refuse connections or accept and never answer.
// At most S2SMaxConnectingPerSender of them are connected at once; every
// message bounces within the connect timeout (plus a margin), not after
// one timeout per batch; those past the queue's bound bounce at once with
// resource-constraint; another user's message to a reachable server is
// delivered meanwhile, well within the connect timeout; and afterwards
// the descriptors and goroutines are back where they were.
func TestFederationConnectLimitPerSender(t *testing.T) {
	const (
		timeout    = 2 * time.Second
		margin     = time.Second
		maxConn    = 6
		perSender  = 4
		waitSender = 100
		domains    = 300
	)
	silent := newSilentPeer(t)
	refused := closedAddr(t)
	routes := map[string]string{}
	kind := map[string]string{} // id → "silent" or "refused"
	for i := 0; i < domains; i++ {
		d := fmt.Sprintf("d%d.test", i)
		id := fmt.Sprintf("m%d", i)
		if i%3 == 2 {
			routes[d], kind[id] = refused, "refused"
		} else {
			routes[d], kind[id] = silent.addr(), "silent"
		}
	}
	local, remote := federatedPair(t, routes, func(srv *xmpp.Server) {
		srv.S2SConnectTimeout = timeout
		srv.S2SMaxConnecting = maxConn
		srv.S2SMaxConnectingPerSender = perSender
		srv.S2SMaxWaitingPerSender = waitSender
		srv.S2SIdleTimeout = 300 * time.Millisecond
	})
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := local.Dial(t, local.AddUser(t, "bob", "pw"), "pw", "b")
	carol := remote.Dial(t, remote.AddUser(t, "carol", "pw"), "pw", "c")
	// Federation once before counting, so that what it leaves behind (its
	// streams close when idle) is in the count.
	testenv.Exchange(t, bob, carol)
	waitFor(t, "the streams between the servers to close", func() bool {
		return len(local.S2SLinks()) == 0 && len(remote.S2SLinks()) == 0
	})
	before := measure()
	s := startSampler(local.Server)
	col := startCollector(t, alice)

	var flood strings.Builder
	for i := 0; i < domains; i++ {
		fmt.Fprintf(&flood, `<message type="chat" id="m%d" to="x@d%d.test"><body>hi</body></message>`, i, i)
	}
	sent := time.Now()
	alice.SendRaw(t, flood.String())

	// Once alice's slots are all held by silent servers, bob's message to
	// a server that answers still goes out at once.
	waitFor(t, "alice's attempts to fill her slots", func() bool { return silent.stats().open >= perSender })
	bobSent := time.Now()
	testenv.Exchange(t, bob, carol)
	bobTook := time.Since(bobSent)
	if bobTook >= timeout/2 {
		t.Errorf("bob's message took %v during alice's flood: it waited behind her attempts", bobTook)
	}

	got := col.bounces(t, kind, timeout+margin+time.Second)
	peak := s.stop()
	lat := checkBounces(t, got, kind, sent, timeout+margin)
	st := silent.stats()
	if st.max > perSender {
		t.Errorf("%d connections to the silent server at once, want at most %d (per sender)", st.max, perSender)
	}
	if peak.connecting > maxConn {
		t.Errorf("%d attempts connecting at once, want at most %d", peak.connecting, maxConn)
	}
	if peak.waiting > waitSender {
		t.Errorf("%d attempts waiting, want at most %d", peak.waiting, waitSender)
	}
	if lat.counts["resource-constraint"] == 0 {
		t.Errorf("no message bounced for the queue's bound: %v", lat.counts)
	}
	waitFor(t, "the streams between the servers to close", func() bool {
		return len(local.S2SLinks()) == 0 && len(remote.S2SLinks()) == 0
	})
	checkLeaks(t, local.Server, silent, before, peak, maxConn)
	t.Logf("bounces %v; latency median %v, max %v (bound %v); refused at once: max %v; bob's delivery %v; silent server: %d accepted, at most %d at once",
		lat.counts, lat.median, lat.max, timeout+margin, lat.maxRefused, bobTook, st.accepted, st.max)
}

// TestFederationConnectLimitTotal: two users flood silent servers; together
// they never have more than S2SMaxConnecting attempts connecting, and the
// queue's bounds refuse the rest with texts that say which bound: the
// first user's own (S2SMaxWaitingPerSender) and then the server's
// (S2SMaxWaiting).
func TestFederationConnectLimitTotal(t *testing.T) {
	const (
		timeout    = 2 * time.Second
		margin     = time.Second
		maxConn    = 6
		perSender  = 4
		waitAll    = 50
		waitSender = 40
		each       = 60
	)
	silent := newSilentPeer(t)
	routes := map[string]string{}
	kind := map[string]string{}
	for _, who := range []string{"a", "b"} {
		for i := 0; i < each; i++ {
			routes[fmt.Sprintf("%s%d.test", who, i)] = silent.addr()
			kind[fmt.Sprintf("%s%d", who, i)] = "silent"
		}
	}
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.S2SRoutes = routes
		srv.S2SConnectTimeout = timeout
		srv.S2SMaxConnecting = maxConn
		srv.S2SMaxConnectingPerSender = perSender
		srv.S2SMaxWaiting = waitAll
		srv.S2SMaxWaitingPerSender = waitSender
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "a")
	dave := s.Dial(t, s.AddUser(t, "dave", "pw"), "pw", "d")
	// The message archive's first writes open the database's write-ahead
	// log and another pooled connection for good: let them happen before
	// counting descriptors. An archive query returns once what was
	// archived before it is stored.
	testenv.Exchange(t, alice, dave)
	testenv.Exchange(t, dave, alice)
	alice.SendRaw(t, `<iq type="set" id="mam"><query xmlns="urn:xmpp:mam:2"/></iq>`)
	alice.Expect(t, "archive query's answer", func(el *xmpp.Element) bool { return el.Get("id") == "mam" })
	before := measure()
	smp := startSampler(s.Server)
	col := startCollector(t, alice, dave)
	flood := func(c *testenv.Client, who string) {
		var b strings.Builder
		for i := 0; i < each; i++ {
			fmt.Fprintf(&b, `<message type="chat" id="%s%d" to="x@%s%d.test"><body>hi</body></message>`, who, i, who, i)
		}
		c.SendRaw(t, b.String())
	}
	sentA := time.Now()
	flood(alice, "a")
	col.sync(t, alice)
	if c, w := s.S2SConnecting(); c != perSender || w != waitSender {
		t.Fatalf("after alice's flood: %d attempts connecting, %d waiting; want %d and %d", c, w, perSender, waitSender)
	}
	sentD := time.Now()
	flood(dave, "b")
	aliceKinds, daveKinds := map[string]string{}, map[string]string{}
	for id, k := range kind {
		if id[0] == 'a' {
			aliceKinds[id] = k
		} else {
			daveKinds[id] = k
		}
	}
	got := col.bounces(t, kind, timeout+margin+time.Second)
	peak := smp.stop()
	gotA, gotD := map[string]bounce{}, map[string]bounce{}
	for id, b := range got {
		if id[0] == 'a' {
			gotA[id] = b
		} else {
			gotD[id] = b
		}
	}
	latA := checkBounces(t, gotA, aliceKinds, sentA, timeout+margin)
	latD := checkBounces(t, gotD, daveKinds, sentD, timeout+margin)

	// alice: 4 connecting, 40 waiting, 16 refused by her own bound; dave:
	// the 2 slots left, 10 places left in the server's queue, 48 refused
	// by the server's bound.
	if n := countText(gotA, textSenderQueueFull); n != each-perSender-waitSender {
		t.Errorf("alice: %d bounces for her own queue's bound, want %d (%v)", n, each-perSender-waitSender, latA.counts)
	}
	if n := countText(gotD, textQueueFull); n != each-(maxConn-perSender)-(waitAll-waitSender) {
		t.Errorf("dave: %d bounces for the server's queue bound, want %d (%v)", n, each-(maxConn-perSender)-(waitAll-waitSender), latD.counts)
	}
	st := silent.stats()
	if st.max > maxConn || peak.connecting > maxConn {
		t.Errorf("%d connections to the silent server at once (%d counted connecting), want at most %d", st.max, peak.connecting, maxConn)
	}
	if st.max < maxConn {
		t.Errorf("at most %d connections at once: the flood should have used all %d slots", st.max, maxConn)
	}
	if peak.waiting > waitAll {
		t.Errorf("%d attempts waiting, want at most %d", peak.waiting, waitAll)
	}
	checkLeaks(t, s.Server, silent, before, peak, maxConn)
	t.Logf("alice %v (max %v), dave %v (max %v); silent server: %d accepted, at most %d at once",
		latA.counts, latA.max, latD.counts, latD.max, st.accepted, st.max)
}

// TestFederationConnectTurns: when attempts wait, the senders take turns
// for the slots that free, so that a second sender does not wait behind
// all of the first one's queue.
func TestFederationConnectTurns(t *testing.T) {
	peer := newGatePeer(t)
	routes := map[string]string{}
	for _, d := range []string{"a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"} {
		routes[d+".test"] = peer.addr()
	}
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.S2SRoutes = routes
		srv.S2SMaxConnecting = 1
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "a")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "b")
	col := startCollector(t, alice, bob)
	send := func(c *testenv.Client, who string) {
		for i := 1; i <= 4; i++ {
			c.SendRaw(t, fmt.Sprintf(`<message type="chat" id="%s%d" to="x@%s%d.test"><body>hi</body></message>`, who, i, who, i))
		}
		col.sync(t, c)
	}
	sent := time.Now()
	send(alice, "a") // a1 connects, a2-a4 wait
	send(bob, "b")   // b1-b4 wait
	var order []string
	for range 8 {
		// Each attempt ends when the peer closes it, and frees the slot.
		c := peer.next(t)
		order = append(order, c.to)
		c.Close()
	}
	want := "a1.test a2.test b1.test a3.test b2.test a4.test b3.test b4.test"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("connections in the order %s, want %s", got, want)
	}
	kind := map[string]string{}
	for _, id := range []string{"a1", "a2", "a3", "a4", "b1", "b2", "b3", "b4"} {
		kind[id] = "refused" // closed: remote-server-not-found
	}
	checkBounces(t, col.bounces(t, kind, testenv.Timeout), kind, sent, testenv.Timeout)
}

// TestFederationQueueSize: a stream being set up queues S2SQueueSize
// stanzas; the rest bounce at once with resource-constraint, and the
// queued ones when the connect timeout ends.
func TestFederationQueueSize(t *testing.T) {
	const timeout = 500 * time.Millisecond
	silent := newSilentPeer(t)
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.S2SRoutes = map[string]string{"slow.test": silent.addr()}
		srv.S2SQueueSize = 3
		srv.S2SConnectTimeout = timeout
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "a")
	col := startCollector(t, alice)
	kind := map[string]string{}
	var b strings.Builder
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, `<message type="chat" id="q%d" to="x@slow.test"><body>hi</body></message>`, i)
		kind[fmt.Sprint("q", i)] = "silent"
	}
	sent := time.Now()
	alice.SendRaw(t, b.String())
	got := col.bounces(t, kind, testenv.Timeout)
	checkBounces(t, got, kind, sent, timeout+time.Second)
	for id, b := range got {
		want := "remote-server-timeout"
		if id >= "q3" {
			want = "resource-constraint"
		}
		if b.cond != want {
			t.Errorf("%s bounced with %s (%s), want %s", id, b.cond, b.text, want)
		}
	}
}

var headerTo = regexp.MustCompile(`<stream:stream [^>]* to="([^"]*)"`)

// gatePeer accepts connections, reads the stream header to learn which
// domain each is for, and hands them to the test, which closes them.
type gatePeer struct {
	l  net.Listener
	in chan gateConn
}

type gateConn struct {
	net.Conn
	to string
}

func newGatePeer(t *testing.T) *gatePeer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gatePeer{l: l, in: make(chan gateConn, 16)}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(testenv.Timeout))
			var hdr []byte
			var m [][]byte
			buf := make([]byte, 512)
			for m == nil {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				hdr = append(hdr, buf[:n]...)
				m = headerTo.FindSubmatch(hdr)
			}
			to := ""
			if m != nil {
				to = string(m[1])
			}
			select {
			case p.in <- gateConn{c, to}:
			case <-quit:
				c.Close()
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(quit)
		l.Close()
		<-done
		close(p.in)
		for c := range p.in {
			c.Close()
		}
	})
	return p
}

func (p *gatePeer) addr() string { return p.l.Addr().String() }

func (p *gatePeer) next(t *testing.T) gateConn {
	t.Helper()
	select {
	case c := <-p.in:
		return c
	case <-time.After(testenv.Timeout):
		t.Fatal("timed out waiting for a connection")
		return gateConn{}
	}
}

// federatedPair is testenv.StartPair with more routes for the local server.
func federatedPair(t *testing.T, routes map[string]string, configure func(*xmpp.Server)) (local, remote *testenv.Server) {
	la, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routes[remoteDomain] = lb.Addr().String()
	local = testenv.StartWithS2S(t, "sqlite", la, configure, func(srv *xmpp.Server) { srv.S2SRoutes = routes })
	remote = testenv.StartWithS2S(t, "sqlite", lb, configure, func(srv *xmpp.Server) {
		srv.Domain = remoteDomain
		srv.S2SRoutes = map[string]string{testenv.Domain: la.Addr().String()}
	})
	return local, remote
}

// closedAddr is a loopback address where nothing listens: connections to
// it are refused at once.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// silentPeer accepts connections and never answers: an attempt to reach it
// holds its slot until the connect timeout.
type silentPeer struct {
	l    net.Listener
	done chan struct{}
	mu   sync.Mutex
	open []net.Conn
	st   silentStats
}

type silentStats struct{ open, max, accepted int }

func newSilentPeer(t *testing.T) *silentPeer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentPeer{l: l, done: make(chan struct{})}
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		<-p.done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.open {
			c.Close()
		}
	})
	return p
}

func (p *silentPeer) addr() string { return p.l.Addr().String() }

func (p *silentPeer) accept() {
	defer close(p.done)
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.sweep()
		p.open = append(p.open, c)
		p.st.accepted++
		p.st.max = max(p.st.max, len(p.open))
		p.mu.Unlock()
	}
}

// sweep drops the connections xmppd has closed. xmppd closes an attempt's
// socket before the next attempt gets its slot, so when the next one is
// accepted here the end of the last is already readable: the count of
// open connections is exact. p.mu is held.
func (p *silentPeer) sweep() {
	buf := make([]byte, 4096)
	keep := p.open[:0]
	for _, c := range p.open {
		var err error
		for err == nil {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err = c.Read(buf) // the stream header xmppd sent, then EOF or nothing
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			keep = append(keep, c)
		} else {
			c.Close()
		}
	}
	p.open = keep
}

func (p *silentPeer) stats() silentStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep()
	p.st.open = len(p.open)
	return p.st
}

// usage is what the process holds: open descriptors (-1 without
// /proc/self/fd) and goroutines.
type usage struct{ fds, goroutines int }

func measure() usage {
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents)
	}
	return usage{fds, runtime.NumGoroutine()}
}

// sampler records the most descriptors and attempts seen at once.
type sampler struct {
	srv  *xmpp.Server
	quit chan struct{}
	done chan peaks
}

type peaks struct{ fds, connecting, waiting int }

func startSampler(srv *xmpp.Server) *sampler {
	s := &sampler{srv: srv, quit: make(chan struct{}), done: make(chan peaks)}
	go func() {
		var p peaks
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			u := measure()
			c, w := srv.S2SConnecting()
			p.fds, p.connecting, p.waiting = max(p.fds, u.fds), max(p.connecting, c), max(p.waiting, w)
			select {
			case <-s.quit:
				s.done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() peaks {
	close(s.quit)
	return <-s.done
}

// bounce is an error reply and when it came.
type bounce struct {
	cond, text string
	at         time.Time
}

// A collector timestamps the stanzas clients receive as they arrive, so
// that a test may do other things meanwhile.
type collector struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	got     []arrival
	err     error
	changed chan struct{} // closed at each arrival
}

type arrival struct {
	el *xmpp.Element
	at time.Time
}

func startCollector(t *testing.T, clients ...*testenv.Client) *collector {
	c := &collector{quit: make(chan struct{}), changed: make(chan struct{})}
	for _, cl := range clients {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case el, ok := <-cl.In:
					c.mu.Lock()
					if ok {
						c.got = append(c.got, arrival{el, time.Now()})
					} else {
						c.err = fmt.Errorf("%s: stream ended", cl.JID)
					}
					close(c.changed)
					c.changed = make(chan struct{})
					c.mu.Unlock()
					if !ok {
						return
					}
				case <-c.quit:
					return
				}
			}
		}()
	}
	t.Cleanup(func() { close(c.quit); c.wg.Wait() })
	return c
}

// wait waits until done holds for what has arrived, or fails the test
// after within.
func (c *collector) wait(t *testing.T, what string, within time.Duration, done func([]arrival) bool) []arrival {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		c.mu.Lock()
		got, err, changed := c.got, c.err, c.changed
		c.mu.Unlock()
		if done(got) {
			return got
		}
		if err != nil {
			t.Fatalf("%v while waiting for %s", err, what)
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}

// sync waits until cl's session has handled everything cl sent before:
// the answer to a ping comes after them (RFC 6120 §10.1, in order).
func (c *collector) sync(t *testing.T, cl *testenv.Client) {
	t.Helper()
	id := "sync-" + cl.JID.Resourcepart()
	cl.SendRaw(t, `<iq type="get" id="`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	c.wait(t, "the answer to "+id, testenv.Timeout, func(got []arrival) bool {
		for _, a := range got {
			if a.el.Get("id") == id {
				return true
			}
		}
		return false
	})
}

// bounces waits until every message of want has come back as an error, or
// within has passed, and returns the bounces by message id.
func (c *collector) bounces(t *testing.T, want map[string]string, within time.Duration) map[string]bounce {
	t.Helper()
	got := map[string]bounce{}
	seen := 0
	c.wait(t, fmt.Sprintf("%d bounces", len(want)), within, func(all []arrival) bool {
		for _, a := range all[seen:] {
			seen++
			el := a.el
			id := el.Get("id")
			if _, ok := want[id]; !ok || el.Local != "message" {
				continue
			}
			if el.Get("type") != "error" {
				t.Fatalf("message %s came back as %s", id, el)
			}
			b := bounce{at: a.at}
			if e := el.Child("", "error"); e != nil {
				for _, k := range e.Elements() {
					if k.Space == xmpp.NSStanzas {
						if k.Local == "text" {
							b.text = k.Text()
						} else {
							b.cond = k.Local
						}
					}
				}
			}
			if _, dup := got[id]; dup {
				t.Errorf("message %s bounced twice", id)
			}
			got[id] = b
		}
		return len(got) == len(want)
	})
	return got
}

type latencies struct {
	counts      map[string]int
	median, max time.Duration
	maxRefused  time.Duration // of the bounces for the queue's bound
}

// checkBounces checks each bounce's condition against the kind of server
// its domain has, and its latency from sent against bound.
func checkBounces(t *testing.T, got map[string]bounce, kind map[string]string, sent time.Time, bound time.Duration) latencies {
	t.Helper()
	l := latencies{counts: map[string]int{}}
	var all []time.Duration
	for id, b := range got {
		d := b.at.Sub(sent)
		all = append(all, d)
		l.counts[b.cond]++
		if b.text == "" {
			t.Errorf("bounce of %s (%s) has no text", id, b.cond)
		}
		switch {
		case b.cond == "resource-constraint":
			// Refused a place in the queue: at once.
			l.maxRefused = max(l.maxRefused, d)
			if d > bound/3 {
				t.Errorf("bounce of %s for the queue's bound took %v", id, d)
			}
		case b.cond == "remote-server-timeout":
		case b.cond == "remote-server-not-found" && kind[id] == "refused":
		default:
			t.Errorf("message %s to a %s server bounced with %q (%s)", id, kind[id], b.cond, b.text)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	l.median, l.max = all[len(all)/2], all[len(all)-1]
	if l.max > bound {
		t.Errorf("the last bounce came %v after the messages were sent, want within %v (connect timeout and margin)", l.max, bound)
	}
	return l
}

func countText(got map[string]bounce, text string) int {
	n := 0
	for _, b := range got {
		if strings.HasPrefix(b.text, text) {
			n++
		}
	}
	return n
}

// checkLeaks checks the descriptors held during the flood against the
// attempts allowed (two per connection: ours and the silent server's,
// and a few for the federation that works), and that descriptors,
// goroutines and attempts go back to what they were.
func checkLeaks(t *testing.T, srv *xmpp.Server, silent *silentPeer, before usage, peak peaks, maxConn int) {
	t.Helper()
	// At the peak, a federated stream may be being set up too: our socket
	// and the peer's, and the same for its dialback check.
	const federation = 4
	if before.fds >= 0 && peak.fds > before.fds+2*maxConn+federation {
		t.Errorf("%d descriptors open at the peak, from %d before: want at most %d more", peak.fds, before.fds, 2*maxConn+federation)
	}
	var after usage
	waitFor(t, "attempts, descriptors and goroutines to go back", func() bool {
		c, w := srv.S2SConnecting()
		after = measure()
		return c == 0 && w == 0 && silent.stats().open == 0 &&
			after.fds <= before.fds && after.goroutines <= before.goroutines+2
	})
	t.Logf("descriptors: %d before, %d at the peak, %d after; goroutines %d before, %d after",
		before.fds, peak.fds, after.fds, before.goroutines, after.goroutines)
}

// waitFor polls cond until it holds, or fails the test after
// testenv.Timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

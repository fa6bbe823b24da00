package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// boshFrom is an HTTP client whose connections come from the loopback
// address ip, keep-alive as a browser's.
func boshFrom(ip string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: dialer(ip).DialContext, MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
}

// boshPost posts a raw <body/> and returns the response's body.
func boshPost(ctx context.Context, c *http.Client, url, raw string) (*xmpp.Element, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return xmpp.ParseElement(data)
}

const boshNS = `xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh"`

func boshCreate(rid int64) string {
	return fmt.Sprintf(`<body %s to="localhost" rid="%d" wait="60" hold="1" ver="1.6" xmpp:version="1.0"/>`, boshNS, rid)
}

func boshEmpty(sid string, rid int64) string {
	return fmt.Sprintf(`<body %s sid="%s" rid="%d"/>`, boshNS, sid, rid)
}

// gauge reads a metric without labels from the admin listener's /metrics.
func gauge(t *testing.T, s *server, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAttackBOSHSessionLoop creates BOSH sessions in loops from three
// addresses: sessions never used after their creation; sessions whose next
// request skips a rid, so that it waits for one that never comes, and is
// then given up; sessions whose held request is replayed on new
// connections (§14.3) that are kept open. Beyond 32 unauthenticated
// sessions per address creation is refused (the stream ends with
// <policy-violation/>), every session ends within the negotiation timeout
// and the inactivity time (2 s each here), and no request stays held
// past the wait.
func TestAttackBOSHSessionLoop(t *testing.T) {
	const negotiation, inactivity, maxWait = 2 * time.Second, 2 * time.Second, 2 * time.Second
	tg := startTarget(t, "limits:\n  negotiation_timeout: 2s\nhttp:\n  bosh:\n    inactivity: 2s\n    max_wait: 2s\n")
	url := "http://" + tg.http + "/http-bind"
	var (
		created, refused, gaps, replays atomic.Int32
		heldTooLong                     atomic.Int32
		longestReplay                   atomic.Int64
		mu                              sync.Mutex
		otherAnswers                    = map[string]int{}
	)
	other := func(what string) {
		if i := strings.LastIndex(what, ": "); i >= 0 {
			what = what[:strings.Index(what, ":")] + what[i:] // no addresses
		}
		mu.Lock()
		otherAnswers[what]++
		mu.Unlock()
	}
	// create makes a session and says whether it was admitted.
	create := func(ctx context.Context, c *http.Client, rid int64) (string, bool) {
		el, err := boshPost(ctx, c, url, boshCreate(rid))
		switch {
		case err != nil:
			if ctx.Err() == nil {
				other("creation: " + err.Error())
			}
			return "", false
		case el.Get("type") == "terminate":
			if strings.Contains(el.String(), "policy-violation") {
				refused.Add(1)
			} else {
				other("creation: " + el.Get("condition"))
			}
			return "", false
		case el.Get("sid") == "":
			other("creation without sid")
			return "", false
		}
		created.Add(1)
		return el.Get("sid"), true
	}
	loop := func(ctx context.Context, ip string, pace time.Duration, each func(ctx context.Context, c *http.Client, rid int64)) func() {
		return func() {
			c := boshFrom(ip)
			defer c.CloseIdleConnections()
			rid := int64(1000)
			for i, tick := 0, time.NewTicker(pace); ctx.Err() == nil && i < 400; i, _ = i+1, <-tick.C {
				rid += 10
				each(ctx, c, rid)
			}
		}
	}
	unused := func(ctx context.Context, c *http.Client, rid int64) { create(ctx, c, rid) }
	gap := func(ctx context.Context, c *http.Client, rid int64) {
		sid, ok := create(ctx, c, rid)
		if !ok {
			return
		}
		// rid+2 waits for rid+1, which never comes; the client gives up.
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := boshPost(rctx, c, url, boshEmpty(sid, rid+2)); err == nil {
			other("gap: answered")
		}
		gaps.Add(1)
	}
	var replayed sync.WaitGroup
	replay := func(ctx context.Context, c *http.Client, rid int64) {
		sid, ok := create(ctx, c, rid)
		if !ok {
			return
		}
		// rid+1 is held (nothing to send); it is replayed on three new
		// connections, each taking the response over from the one before.
		// The replaced requests are kept waiting by their clients. (Four
		// new connections every 500 ms: within the connection rate.)
		for range 4 {
			replayed.Add(1)
			go func() {
				defer replayed.Done()
				start := time.Now()
				c := boshFrom("127.0.0.10")
				defer c.CloseIdleConnections()
				el, err := boshPost(ctx, c, url, boshEmpty(sid, rid+1))
				d := time.Since(start)
				if ctx.Err() != nil {
					// Still held when the attack ended: for too long if
					// it began long enough before.
					if d > maxWait+2*time.Second {
						heldTooLong.Add(1)
					}
					return
				}
				for m := longestReplay.Load(); int64(d) > m && !longestReplay.CompareAndSwap(m, int64(d)); m = longestReplay.Load() {
				}
				if d > maxWait+2*time.Second {
					heldTooLong.Add(1)
				}
				if err != nil {
					other("replay: " + err.Error())
				} else if el.Get("type") == "terminate" {
					other("replay: terminate " + el.Get("condition"))
				}
			}()
			replays.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}
	tg.attack.Run = func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, a := range []struct {
			ip   string
			each func(context.Context, *http.Client, int64)
			n    int
			pace time.Duration
		}{{"127.0.0.8", unused, 5, 50 * time.Millisecond}, {"127.0.0.9", gap, 5, 50 * time.Millisecond}, {"127.0.0.11", replay, 1, 500 * time.Millisecond}} {
			for range a.n {
				wg.Add(1)
				go func() { defer wg.Done(); loop(ctx, a.ip, a.pace, a.each)() }()
			}
		}
		wg.Wait()
		replayed.Wait()
	}
	rep := tg.attack.Measure(t)
	t.Logf("sessions: %d created, %d refused; %d with a gap in their rids, %d replayed requests (the longest held %v); other answers %v",
		created.Load(), refused.Load(), gaps.Load(), replays.Load(), time.Duration(longestReplay.Load()).Round(time.Millisecond), otherAnswers)
	start := time.Now()
	deadline := start.Add(negotiation + inactivity + maxWait + 5*time.Second)
	for n := gauge(t, tg.server, "xmppd_bosh_sessions"); n > 0; n = gauge(t, tg.server, "xmppd_bosh_sessions") {
		if time.Now().After(deadline) {
			t.Fatalf("%v BOSH sessions still open %v after the attack; want none after the negotiation timeout and inactivity", n, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every BOSH session ended %v after the attack", time.Since(start).Round(time.Millisecond))

	if refused.Load() == 0 {
		t.Errorf("no session creation refused with <policy-violation/>, with %d created", created.Load())
	}
	if n := heldTooLong.Load(); n > 0 {
		t.Errorf("%d replayed requests held past the wait (%v) + 2 s", n, maxWait)
	}
	rep.CheckLatency(t)
	rep.CheckMemory(t, rssBound)
}

// The upload service's slot request (XEP-0363 §4).
func slotRequest(size int64) string {
	return fmt.Sprintf(`<request xmlns="urn:xmpp:http:upload:0" filename="f.bin" size="%d" content-type="application/octet-stream"/>`, size)
}

// TestAttackUploadQuota asks for upload slots in a loop past the account's
// quota, for files larger than allowed, and PUTs more than a slot was
// given for, with and without a Content-Length, in parallel. The quota
// (upload.quota_per_account, 1 MiB here; unused slots count) refuses
// slots with <resource-constraint/>, the file size limit (256 KiB) with
// <not-acceptable/>, and a PUT is cut at its slot's size: nothing larger
// is stored, and nothing is buffered in memory.
func TestAttackUploadQuota(t *testing.T) {
	const fileSize, quota = 256 << 10, 1 << 20
	tg := startTarget(t, "upload:\n  max_file_size: 262144\n  quota_per_account: 1048576\n", "uploader")
	up := dialAs(t, tg.server, "127.0.0.1", "uploader")
	slotOf := func(iq *xmpp.Element) string {
		if s := iq.Child("", "slot"); s != nil {
			if p := s.Child("", "put"); p != nil {
				// The service's public URL names the configured port (0
				// here); the path is what counts.
				_, path, _ := strings.Cut(strings.TrimPrefix(p.Get("url"), "http://"), "/")
				return "http://" + tg.http + "/" + path
			}
		}
		return ""
	}
	var (
		granted, overQuota, tooLarge, otherIQ atomic.Int32
		put413, putCut, putOther              atomic.Int32
		slots                                 = make(chan string, 64) // granted, for the PUTs
	)
	// The IQs are sent by one goroutine, the uploader's only reader.
	iqs := func(ctx context.Context) {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil && i < 300; i, _ = i+1, <-tick.C {
			size := int64(200 << 10)
			if i%3 == 2 {
				size = 4 * fileSize // past the file size limit
			}
			id := fmt.Sprintf("slot%d", i)
			if err := up.Send(`<iq type="get" id="` + id + `" to="upload.localhost">` + slotRequest(size) + `</iq>`); err != nil {
				t.Errorf("slot request: %v", err)
				return
			}
			iq, err := awaitEl(ctx, up, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id })
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("slot request: %v", err)
				}
				return
			}
			switch cond := testenv.ErrorCondition(iq); {
			case iq.Get("type") == "result" && slotOf(iq) != "":
				granted.Add(1)
				select {
				case slots <- slotOf(iq):
				default:
				}
			case cond == xmpp.ResourceConstraintC:
				overQuota.Add(1)
			case cond == xmpp.NotAcceptable:
				tooLarge.Add(1)
			default:
				otherIQ.Add(1)
			}
		}
	}
	// puts send slots more than they were given for, again and again (a
	// refused PUT leaves its slot unused): with an honest Content-Length,
	// and chunked with no length, 4 MiB for a slot of 200 KiB.
	var (
		slotMu sync.Mutex
		got    []string
	)
	big := bytes.Repeat([]byte("x"), 4<<20) // made once: the test process has little CPU to spare under -race
	puts := func(ctx context.Context) {
		hc := &http.Client{Timeout: 10 * time.Second}
		for i := 0; ctx.Err() == nil && i < 200; i++ {
			slotMu.Lock()
			for len(slots) > 0 {
				got = append(got, <-slots)
			}
			url := ""
			if len(got) > 0 {
				url = got[i%len(got)]
			}
			slotMu.Unlock()
			if url == "" {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			chunked := i%2 == 1
			body := io.Reader(bytes.NewReader(big[:200<<10+1]))
			if chunked {
				body = io.MultiReader(bytes.NewReader(big)) // hides the length: chunked
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					putCut.Add(1) // the server stopped reading and closed
				}
				continue
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusRequestEntityTooLarge:
				put413.Add(1)
			case resp.StatusCode >= 400:
				putCut.Add(1)
			default:
				putOther.Add(1)
			}
		}
	}
	tg.attack.Run = func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Add(4)
		go func() { defer wg.Done(); iqs(ctx) }()
		for range 3 {
			go func() { defer wg.Done(); puts(ctx) }()
		}
		wg.Wait()
	}
	rep := tg.attack.Measure(t)
	t.Logf("slots: %d granted, %d refused over quota, %d refused as too large, %d other; PUTs larger than the slot: %d refused 413, %d refused or cut, %d accepted",
		granted.Load(), overQuota.Load(), tooLarge.Load(), otherIQ.Load(), put413.Load(), putCut.Load(), putOther.Load())
	if g := granted.Load(); g == 0 || int64(g)*(200<<10) > quota {
		t.Errorf("%d slots of 200 KiB granted with a quota of %d bytes", g, quota)
	}
	if overQuota.Load() == 0 {
		t.Error("no slot refused with <resource-constraint/> past the quota")
	}
	if tooLarge.Load() == 0 {
		t.Error("no slot refused with <not-acceptable/> past the file size limit")
	}
	if n := putOther.Load(); n > 0 || put413.Load() == 0 {
		t.Errorf("%d PUTs larger than their slot accepted, %d refused with 413", n, put413.Load())
	}
	// Nothing of the refused PUTs is kept: no file, no temporary file, and
	// the slots are still unused, so that a PUT of the right size works.
	if files, _ := filepath.Glob(filepath.Join(tg.data, "upload", "*")); len(files) > 0 {
		t.Errorf("files kept after refused PUTs: %v", files)
	}
	if len(got) > 0 {
		putStored(t, tg, got[0], 200<<10)
	}
	rep.CheckLatency(t)
	rep.CheckMemory(t, rssBound)
}

// putStored PUTs size bytes to the slot url at once, after an attack: the
// slot still takes its file (201), and the upload folder then holds that
// one file (so the folder an attack test found empty is the right one).
func putStored(t *testing.T, tg *target, url string, size int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(strings.Repeat("x", size)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("a PUT of the slot's size after the attack: %d, want 201", resp.StatusCode)
	}
	if files, _ := filepath.Glob(filepath.Join(tg.data, "upload", "*")); len(files) != 1 {
		t.Errorf("after one PUT of the slot's size the upload folder holds %v, want one file", files)
	}
}

// TestAttackBOSHCreationOneConnection posts BOSH session creations in loops
// over kept-alive connections: four clients from one address, one
// connection each, a creation every 20 ms each (200 a second); and, for
// comparison, a loop of new connections from another address, one
// creation on each, at 50 a second. The unauthenticated cap is raised out
// of the way: only the connection rate (10/s after a burst of 100) refuses.
// Both loops are held to what the rate allows (the kept-alive one with the
// stream error's "too many new connections" in its <body type="terminate"
// condition="policy-violation"/>), the kept-alive clients never needed a
// second connection, and every session ends after the attack.
func TestAttackBOSHCreationOneConnection(t *testing.T) {
	const rate, burst, clients = 10, 100, 4
	tg := startTarget(t, "limits:\n  negotiation_timeout: 2s\n  max_unauthenticated_per_ip: 5000\nhttp:\n  bosh:\n    inactivity: 2s\n")
	url := "http://" + tg.http + "/http-bind"
	var (
		dials                    atomic.Int32
		keptCreated, keptRefused atomic.Int32
		loopCreated, loopRefused atomic.Int32
		mu                       sync.Mutex
		otherAnswers             = map[string]int{}
	)
	other := func(what string) {
		mu.Lock()
		otherAnswers[what]++
		mu.Unlock()
	}
	// kept is one client on one kept-alive connection from 127.0.0.14.
	kept := func(ctx context.Context) {
		d := dialer("127.0.0.14")
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return d.DialContext(ctx, network, addr)
			}}}
		defer c.CloseIdleConnections()
		for i, tick := int64(0), time.NewTicker(20*time.Millisecond); ctx.Err() == nil && i < 500; i, _ = i+1, <-tick.C {
			el, err := boshPost(ctx, c, url, boshCreate(1000+i*10))
			switch {
			case err != nil:
				if ctx.Err() == nil {
					other("kept-alive: " + err.Error())
				}
			case el.Get("type") == "terminate" && el.Get("condition") == "policy-violation" && strings.Contains(el.String(), "too many new connections"):
				keptRefused.Add(1)
			case el.Get("sid") != "":
				keptCreated.Add(1)
			default:
				other("kept-alive: " + el.String())
			}
		}
	}
	// loop opens a new connection from 127.0.0.15 for each creation.
	loop := func(ctx context.Context) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer("127.0.0.15").DialContext}}
		for i, tick := int64(0), time.NewTicker(20*time.Millisecond); ctx.Err() == nil && i < 500; i, _ = i+1, <-tick.C {
			el, err := boshPost(ctx, c, url, boshCreate(1000+i*10))
			switch {
			case err != nil:
				if ctx.Err() == nil {
					loopRefused.Add(1) // closed at accept
				}
			case el.Get("sid") != "":
				loopCreated.Add(1)
			default:
				other("new connections: " + el.String())
			}
		}
	}
	tg.attack.Run = func(ctx context.Context) {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() { defer wg.Done(); kept(ctx) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx) }()
		wg.Wait()
	}
	rep := tg.attack.Measure(t)
	t.Logf("kept-alive connections (%d dialled): %d sessions created, %d refused; new connections: %d created, %d refused; other answers %v",
		dials.Load(), keptCreated.Load(), keptRefused.Load(), loopCreated.Load(), loopRefused.Load(), otherAnswers)

	// What the rate allows over the attack, and the first stream of each
	// kept-alive connection, which its connection paid for.
	allowed := int32(burst + rate*rep.Took.Seconds() + 1)
	if n := keptCreated.Load(); n > allowed+clients || keptRefused.Load() == 0 {
		t.Errorf("over %d kept-alive connections: %d sessions created, %d refused; the rate allows %d + %d", clients, n, keptRefused.Load(), allowed, clients)
	}
	if n := loopCreated.Load(); n > allowed || loopRefused.Load() == 0 {
		t.Errorf("over new connections: %d sessions created, %d refused; the rate allows %d", n, loopRefused.Load(), allowed)
	}
	if n := dials.Load(); n != clients {
		t.Errorf("the kept-alive clients dialled %d connections, want %d: the loop was not over one connection each", n, clients)
	}
	start := time.Now()
	deadline := start.Add(2*time.Second + 2*time.Second + 5*time.Second)
	for n := gauge(t, tg.server, "xmppd_bosh_sessions"); n > 0; n = gauge(t, tg.server, "xmppd_bosh_sessions") {
		if time.Now().After(deadline) {
			t.Fatalf("%v BOSH sessions still open %v after the attack", n, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every BOSH session ended %v after the attack", time.Since(start).Round(time.Millisecond))
	rep.CheckLatency(t)
	rep.CheckMemory(t, rssBound)
}

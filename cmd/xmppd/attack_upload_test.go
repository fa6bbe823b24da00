package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestAttackUploadSlowloris holds upload slots with PUTs whose bodies
// trickle (a byte every 100 ms, far below upload.min_put_rate), one
// trickler per slot reconnecting whenever it is cut, while probers PUT to
// the same slots again and again. Each trickling PUT is cut with 408 about
// upload.put_grace after it began (1 s here; the whole file would be due
// only after 17 s); a PUT to a slot with one under way gets 409; the
// server's file descriptors stay within the attack's connections, and
// after the attack return to what they were, with nothing left in the
// upload folder; the slots still take a PUT at a normal pace.
func TestAttackUploadSlowloris(t *testing.T) {
	const (
		slots    = 8
		size     = 64 << 10
		grace    = time.Second
		rate     = 4096
		trickle  = 100 * time.Millisecond
		probeGap = 200 * time.Millisecond
	)
	tg := startTarget(t, fmt.Sprintf("upload:\n  max_file_size: 262144\n  min_put_rate: %d\n  put_grace: %v\n", rate, grace), "slow")
	up := dialAs(t, tg.server, "127.0.0.1", "slow")
	var urls []string
	for i := range slots {
		id := fmt.Sprint("slot", i)
		if err := up.Send(`<iq type="get" id="` + id + `" to="upload.localhost">` + slotRequest(size) + `</iq>`); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), testenv.Timeout)
		iq, err := awaitEl(ctx, up, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id })
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		p := iq.Child("", "slot").Child("", "put")
		if iq.Get("type") != "result" || p == nil {
			t.Fatalf("slot request: %s", iq)
		}
		// The public URL names the configured port (0); the path counts.
		_, path, _ := strings.Cut(strings.TrimPrefix(p.Get("url"), "http://"), "/")
		urls = append(urls, "http://"+tg.http+"/"+path)
	}
	fds := testenv.ProcessFDs(tg.cmd.Process.Pid)

	var (
		cut, heldTooLong, conflicts, probes atomic.Int32
		longest                             atomic.Int64
		fdBefore, fdPeak, socketsBefore     atomic.Int64
		mu                                  sync.Mutex
		other                               = map[string]int{}
	)
	note := func(what string) {
		mu.Lock()
		other[what]++
		mu.Unlock()
	}
	// trickleOnce PUTs to url a byte at a time until the server answers,
	// and reports how long the PUT lasted.
	trickleOnce := func(ctx context.Context, url string) {
		host, path, _ := strings.Cut(strings.TrimPrefix(url, "http://"), "/")
		c, err := dialer("127.0.0.12").DialContext(ctx, "tcp", host)
		if err != nil {
			if ctx.Err() == nil {
				note("dial: " + err.Error())
			}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := fmt.Fprintf(c, "PUT /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, host, size); err != nil {
			note("write: " + err.Error())
			return
		}
		answered := make(chan *http.Response, 1)
		go func() {
			resp, _ := http.ReadResponse(bufio.NewReader(c), nil)
			answered <- resp
		}()
		tick := time.NewTicker(trickle)
		defer tick.Stop()
		for {
			select {
			case resp := <-answered:
				d := time.Since(start)
				for m := longest.Load(); int64(d) > m && !longest.CompareAndSwap(m, int64(d)); m = longest.Load() {
				}
				switch {
				case resp == nil:
					note("closed without an answer")
				case resp.StatusCode == http.StatusRequestTimeout:
					cut.Add(1)
				default:
					note(resp.Status)
				}
				if d > grace+2*time.Second {
					heldTooLong.Add(1)
				}
				return
			case <-ctx.Done():
				// Still trickling when the attack ended: for too long if
				// it began long enough before.
				if time.Since(start) > grace+2*time.Second {
					heldTooLong.Add(1)
				}
				c.Close()
				<-answered
				return
			case <-tick.C:
				c.Write([]byte("x")) // an error shows as the answer or its absence
			}
		}
	}
	// probe PUTs one byte to url: refused 400 (not the slot's length), or
	// 409 while another PUT to the slot runs. Nothing is stored either way.
	probe := func(ctx context.Context, hc *http.Client, url string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader("x"))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				note("probe: " + err.Error())
			}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		probes.Add(1)
		switch resp.StatusCode {
		case http.StatusConflict:
			conflicts.Add(1)
		case http.StatusBadRequest:
		default:
			note("probe: " + resp.Status)
		}
	}
	tg.attack.Run = func(ctx context.Context) {
		n, err := fds()
		if err != nil {
			t.Error(err)
			return
		}
		fdBefore.Store(int64(n))
		fdPeak.Store(int64(n))
		socketsBefore.Store(int64(sockets(tg.cmd.Process.Pid)))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the server's descriptors while the attack runs
			defer wg.Done()
			for tick := time.NewTicker(50 * time.Millisecond); ctx.Err() == nil; <-tick.C {
				if n, err := fds(); err == nil && int64(n) > fdPeak.Load() {
					fdPeak.Store(int64(n))
				}
			}
		}()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: dialer("127.0.0.13").DialContext, MaxIdleConnsPerHost: slots}}
		defer hc.CloseIdleConnections()
		for _, url := range urls {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil && i < 100; i++ {
					trickleOnce(ctx, url)
				}
			}()
			go func() {
				defer wg.Done()
				for i, tick := 0, time.NewTicker(probeGap); ctx.Err() == nil && i < 100; i, _ = i+1, <-tick.C {
					probe(ctx, hc, url)
				}
			}()
		}
		wg.Wait()
	}
	rep := tg.attack.Measure(t)
	t.Logf("trickling PUTs: %d cut with 408 (the longest lasted %v), %d held past the grace + 2 s; probes: %d, %d of them 409; server fds %d before, %d at peak; other answers %v",
		cut.Load(), time.Duration(longest.Load()).Round(time.Millisecond), heldTooLong.Load(), probes.Load(), conflicts.Load(),
		fdBefore.Load(), fdPeak.Load(), other)

	if cut.Load() == 0 {
		t.Error("no trickling PUT cut with 408")
	}
	if n := heldTooLong.Load(); n > 0 {
		t.Errorf("%d trickling PUTs lasted past the grace (%v) + 2 s", n, grace)
	}
	if conflicts.Load() == 0 {
		t.Error("no PUT to a slot with one under way refused with 409")
	}
	// Each trickler holds a connection and a temporary file, each prober a
	// connection: the server's descriptors grow by no more than twice that.
	if grew, bound := fdPeak.Load()-fdBefore.Load(), int64(2*(2*slots+slots)); grew > bound {
		t.Errorf("the server's file descriptors grew by %d during the attack, want ≤ %d", grew, bound)
	}
	// After the attack: the server's sockets back to what they were (the
	// probers' idle connections closed) and no partial file left. (Other
	// descriptors may stay: the database pool opens connections as the
	// concurrent PUTs look their slots up, and keeps them.)
	start := time.Now()
	deadline := start.Add(grace + 3*time.Second)
	for {
		n := sockets(tg.cmd.Process.Pid)
		files, _ := filepath.Glob(filepath.Join(tg.data, "upload", "*"))
		if int64(n) <= socketsBefore.Load() && len(files) == 0 {
			t.Logf("%v after the attack: %d sockets (%d before), no file in the upload folder", time.Since(start).Round(time.Millisecond), n, socketsBefore.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the attack: %d sockets (%d before): %v; files %v", grace+3*time.Second, n, socketsBefore.Load(), fdLinks(tg.cmd.Process.Pid), files)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A slot that was trickled at still takes the file at a normal pace.
	putStored(t, tg, urls[0], size)
	rep.CheckLatency(t)
	rep.CheckMemory(t, rssBound)
}

// fdLinks names what process pid's descriptors are open on.
func fdLinks(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, l)
	}
	return out
}

// sockets counts process pid's open sockets.
func sockets(pid int) int {
	n := 0
	for _, l := range fdLinks(pid) {
		if strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

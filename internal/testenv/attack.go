package testenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// An Attack is a flood or an exhaustion attempt run against a server while
// another user's latency and the server's memory are measured (issue 21,
// the attack suite). Measure runs it once, bounded in time; the test then
// checks what it saw with the Report's methods and its own counters.
type Attack struct {
	// Run attacks until ctx ends, and returns by then (it may return
	// sooner, when its count is spent). It runs in its own goroutine.
	Run func(ctx context.Context)
	// Duration bounds the attack; zero is 8 s.
	Duration time.Duration
	// RoundTrip is one round trip of the victim pair, who are not part
	// of the attack; it is sampled before the attack and while it runs.
	RoundTrip func() (time.Duration, error)
	// Memory reads the server's memory in bytes (ProcessRSS, HeapInUse).
	Memory func() (int64, error)
	// CPU, if set, reads the CPU time the server has used (ProcessCPU),
	// to report how busy the attack kept it.
	CPU func() (time.Duration, error)
}

// AttackReport is what Measure saw.
type AttackReport struct {
	// Baseline and During are the victim's median round trips before and
	// while the attack ran, over BaselineN and DuringN samples.
	Baseline, During   time.Duration
	BaselineN, DuringN int
	// MemBefore is the server's memory before the attack, MemPeak the most
	// sampled while it ran (and just after).
	MemBefore, MemPeak int64
	// CPU is the server's CPU time over the attack (zero without
	// Attack.CPU), Took the attack's length.
	CPU, Took time.Duration
}

// LatencyAllowance is the absolute slack on the 2× latency bound: on a
// shared 2-core machine a sub-millisecond loopback round trip (Go's
// scheduler, GC pauses of two processes, other tests' fuzzers) jitters by
// a few milliseconds with no attack at all; 5 ms is well under what a
// user notices and well under what a starved server shows (tens of
// milliseconds to seconds).
const LatencyAllowance = 5 * time.Millisecond

const baselineSamples = 40

// Measure runs the attack: the victim's baseline first, then the attack
// with the victim sampling throughout and memory sampled every 50 ms,
// until the attack returns or its Duration passes.
func (a Attack) Measure(t testing.TB) AttackReport {
	t.Helper()
	var rep AttackReport
	var base []time.Duration
	for range 3 { // warm up: TLS session state, the first allocations
		if _, err := a.RoundTrip(); err != nil {
			t.Fatalf("victim before the attack: %v", err)
		}
	}
	for range baselineSamples {
		d, err := a.RoundTrip()
		if err != nil {
			t.Fatalf("victim before the attack: %v", err)
		}
		base = append(base, d)
		time.Sleep(5 * time.Millisecond)
	}
	rep.Baseline, rep.BaselineN = median(base), len(base)
	m, err := a.Memory()
	if err != nil {
		t.Fatalf("memory before the attack: %v", err)
	}
	rep.MemBefore, rep.MemPeak = m, m

	dur := a.Duration
	if dur <= 0 {
		dur = 8 * time.Second
	}
	var cpu0 time.Duration
	if a.CPU != nil {
		if cpu0, err = a.CPU(); err != nil {
			t.Fatalf("CPU time before the attack: %v", err)
		}
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	var (
		mu      sync.Mutex
		memErr  error
		sampler = make(chan struct{})
	)
	go func() {
		defer close(sampler)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			m, err := a.Memory()
			mu.Lock()
			if err != nil && memErr == nil {
				memErr = err
			}
			rep.MemPeak = max(rep.MemPeak, m)
			mu.Unlock()
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
	}()
	var during []time.Duration
	var victimErr error
sampling:
	for {
		select {
		case <-done:
			break sampling
		default:
		}
		d, err := a.RoundTrip()
		if err != nil {
			victimErr = err
			break
		}
		during = append(during, d)
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	<-sampler
	rep.Took = time.Since(began)
	if a.CPU != nil {
		cpu1, err := a.CPU()
		if err != nil {
			t.Fatalf("CPU time after the attack: %v", err)
		}
		rep.CPU = cpu1 - cpu0
	}
	if victimErr != nil {
		t.Fatalf("victim during the attack (after %d round trips): %v", len(during), victimErr)
	}
	if memErr != nil {
		t.Fatalf("memory during the attack: %v", memErr)
	}
	if len(during) < 10 {
		t.Fatalf("only %d victim round trips during the attack: too few to compare", len(during))
	}
	rep.During, rep.DuringN = median(during), len(during)
	t.Logf("victim round trip: baseline median %v (n=%d), during the attack %v (n=%d), ratio %.2f; memory %s before, %s at most (+%s); server CPU %v over %v (%.0f%%)",
		rep.Baseline, rep.BaselineN, rep.During, rep.DuringN, float64(rep.During)/float64(rep.Baseline),
		mib(rep.MemBefore), mib(rep.MemPeak), mib(rep.MemPeak-rep.MemBefore),
		rep.CPU.Round(time.Millisecond), rep.Took.Round(time.Millisecond), 100*rep.CPU.Seconds()/rep.Took.Seconds())
	return rep
}

// CheckLatency fails t unless the victim's median during the attack is at
// most twice its baseline median plus LatencyAllowance.
func (r AttackReport) CheckLatency(t testing.TB) {
	t.Helper()
	if limit := 2*r.Baseline + LatencyAllowance; r.During > limit {
		t.Errorf("other users slowed down: median round trip %v during the attack, baseline %v: more than 2× + %v = %v",
			r.During, r.Baseline, LatencyAllowance, limit)
	}
}

// CheckMemory fails t if the server's memory grew by bound or more while
// the attack ran.
func (r AttackReport) CheckMemory(t testing.TB, bound int64) {
	t.Helper()
	if grew := r.MemPeak - r.MemBefore; grew >= bound {
		t.Errorf("memory grew by %s during the attack (%s to %s), bound %s", mib(grew), mib(r.MemBefore), mib(r.MemPeak), mib(bound))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// ProcessRSS reads the resident set of process pid (VmRSS in
// /proc/PID/status), in bytes.
func ProcessRSS(pid int) func() (int64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	return func() (int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
			if !ok {
				continue
			}
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
		return 0, errors.New(path + " has no VmRSS")
	}
}

// ProcessCPU reads the user and system CPU time process pid has used
// (/proc/PID/stat, in clock ticks of 10 ms).
func ProcessCPU(pid int) func() (time.Duration, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	return func() (time.Duration, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		// The command name, in parentheses, may hold spaces: the fields
		// counted start after it (utime and stime are fields 14 and 15).
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, errors.New(path + ": unexpected format")
		}
		var ticks int64
		for _, s := range f[11:13] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			ticks += n
		}
		return time.Duration(ticks) * 10 * time.Millisecond, nil
	}
}

// ProcessFDs counts the open file descriptors of process pid (the entries
// of /proc/PID/fd): its connections, listeners and files.
func ProcessFDs(pid int) func() (int, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/fd"
	return func() (int, error) {
		es, err := os.ReadDir(path)
		return len(es), err
	}
}

// HeapInUse reads this process's heap in use, for attacks on an in-process
// server.
func HeapInUse() (int64, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), nil
}

// DialAt signs user in over STARTTLS with PLAIN to the client listener addr
// of a server running elsewhere (another process) for Domain, from the
// loopback address ip, and binds resource.
func DialAt(addr, ip string, conf *tls.Config, user jid.JID, password, resource string) (*Client, error) {
	conn, tc, d, _, err := startTLS(ip, addr, Header, conf)
	if err != nil {
		return nil, err
	}
	c, err := login(tc, d, Header, user, password, resource)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// Send writes XML text to the server as it is; unlike SendRaw it returns
// the error, for goroutines other than the test's (attackers).
func (c *Client) Send(s string) error {
	_, err := io.WriteString(c.conn, s)
	return err
}

// EchoPair makes a and b the victim pair: b sends every chat message back
// to its sender, and the returned function times one message from a to b
// and back. It needs a and b to have no other reader; b's echo ends with
// its stream.
func EchoPair(a, b *Client) func() (time.Duration, error) {
	go func() {
		for el := range b.In {
			body := el.Child("", "body")
			if el.Local != "message" || body == nil {
				continue
			}
			if _, err := b.conn.Write([]byte(`<message type="chat" to="` + el.Get("from") + `"><body>` + body.Text() + `</body></message>`)); err != nil {
				return
			}
		}
	}()
	var n int
	return func() (time.Duration, error) {
		n++
		want := "rt-" + strconv.Itoa(n)
		start := time.Now()
		if _, err := a.conn.Write([]byte(`<message type="chat" to="` + b.JID.String() + `"><body>` + want + `</body></message>`)); err != nil {
			return 0, err
		}
		timer := time.NewTimer(Timeout)
		defer timer.Stop()
		for {
			select {
			case el, ok := <-a.In:
				if !ok {
					return 0, fmt.Errorf("%s: stream ended: %v", a.JID, <-a.Err)
				}
				if body := el.Child("", "body"); el.Local == "message" && body != nil && body.Text() == want {
					return time.Since(start), nil
				}
			case <-timer.C:
				return 0, fmt.Errorf("no echo of %s within %v", want, Timeout)
			}
		}
	}
}

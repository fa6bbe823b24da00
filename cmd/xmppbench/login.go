package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loginResult is the JSON result of the login scenario.
type loginResult struct {
	Scenario   string         `json:"scenario"`
	Server     string         `json:"server"`
	Mech       string         `json:"mech"`
	Iterations int            `json:"scram_iterations,omitempty"`
	Clients    int            `json:"clients"`
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"logins_per_s"`
	Latency    latency        `json:"latency_ms"`
	Errors     map[string]int `json:"errors,omitempty"`
}

// logins signs in clients in parallel and keeps track of how it went.
type logins struct {
	cfg     *config
	hist    histogram
	ok      atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	errs    map[string]int
	clients []*client // by index; nil where the login failed
}

// loginAll signs in n clients, cfg.concurrency at a time; with keep, their
// connections stay open, otherwise each is closed after its login.
func loginAll(ctx context.Context, cfg *config, label string, n int, keep bool) *logins {
	l := &logins{cfg: cfg, errs: map[string]int{}}
	if keep {
		l.clients = make([]*client, n)
	}
	stop := l.progress(label, n)
	inTurn(ctx, n, cfg.concurrency, func(i int) {
		start := time.Now()
		c, err := dial(ctx, cfg, i)
		if err == nil {
			if err = c.login(cfg, cfg.user(i)); err != nil {
				c.Close()
			}
		}
		if err != nil {
			l.fail(err)
			return
		}
		l.hist.record(time.Since(start))
		l.ok.Add(1)
		if keep {
			l.clients[i] = c
		} else {
			c.Close()
		}
	})
	stop()
	return l
}

// inTurn runs f for 0 to n-1, workers at a time, until ctx ends.
func inTurn(ctx context.Context, n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (l *logins) fail(err error) {
	l.failed.Add(1)
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	l.mu.Lock()
	if len(l.errs) < 20 || l.errs[msg] > 0 {
		l.errs[msg]++
	}
	l.mu.Unlock()
}

// online is the clients that signed in.
func (l *logins) online() []*client {
	var cs []*client
	for _, c := range l.clients {
		if c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}

func (l *logins) closeAll() {
	for _, c := range l.clients {
		if c != nil {
			c.Close()
		}
	}
}

// progress prints a line a second until the returned func is called.
func (l *logins) progress(label string, n int) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ok := l.ok.Load()
				fmt.Fprintf(l.cfg.progress, "%s: %d/%d signed in, %d failed, %.0f/s\n",
					label, ok, n, l.failed.Load(), float64(ok)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(done); <-finished }
}

func runLogin(ctx context.Context, cfg *config) (any, error) {
	if cfg.warm && cfg.mech != "PLAIN" {
		w := loginAll(ctx, cfg, "login (warming the client's SCRAM cache)", cfg.clients, false)
		if w.failed.Load() > 0 {
			return nil, fmt.Errorf("%d logins failed while warming up: %v", w.failed.Load(), w.errs)
		}
	}
	start := time.Now()
	l := loginAll(ctx, cfg, "login", cfg.clients, true)
	elapsed := time.Since(start)
	l.closeAll()
	res := &loginResult{
		Scenario:   "login",
		Server:     cfg.server,
		Mech:       cfg.mech,
		Iterations: cfg.saltCache.iterations(),
		Clients:    cfg.clients,
		OK:         int(l.ok.Load()),
		Failed:     int(l.failed.Load()),
		Seconds:    round(elapsed.Seconds(), 3),
		PerSecond:  round(float64(l.ok.Load())/elapsed.Seconds(), 1),
		Latency:    l.hist.summary(),
	}
	if len(l.errs) > 0 {
		res.Errors = l.errs
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d logins failed", res.Failed, res.Clients)
	}
	return res, ctx.Err()
}

// idleResult is the JSON result of the idle scenario.
type idleResult struct {
	Scenario     string  `json:"scenario"`
	Server       string  `json:"server"`
	Sessions     int     `json:"sessions"`
	Failed       int     `json:"failed"`
	RSSBefore    int     `json:"rss_before_kib"`
	RSSAfter     int     `json:"rss_after_kib"`
	KiBPerSesson float64 `json:"kib_per_session"`
	Curves       string  `json:"curves"`
	// StreamManagement is set when the clients enabled it (-sm).
	StreamManagement bool `json:"stream_management,omitempty"`
	// KeyExchange counts the sessions by the group their TLS handshake
	// negotiated, so that a result says what the server actually chose.
	KeyExchange map[string]int `json:"key_exchange,omitempty"`
	Errors      map[string]int `json:"errors,omitempty"`
}

func runIdle(ctx context.Context, cfg *config) (any, error) {
	if cfg.pid == 0 {
		return nil, fmt.Errorf("idle needs the server's -pid")
	}
	before, err := rssKiB(cfg.pid)
	if err != nil {
		return nil, err
	}
	l := loginAll(ctx, cfg, "idle", cfg.clients, true)
	defer l.closeAll()
	select {
	case <-time.After(cfg.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, err := rssKiB(cfg.pid)
	if err != nil {
		return nil, err
	}
	ok := int(l.ok.Load())
	res := &idleResult{Scenario: "idle", Server: cfg.server, Sessions: ok, Failed: int(l.failed.Load()),
		RSSBefore: before, RSSAfter: after, Curves: cfg.curves, StreamManagement: cfg.sm}
	for _, c := range l.online() {
		if c.curve != 0 {
			if res.KeyExchange == nil {
				res.KeyExchange = map[string]int{}
			}
			res.KeyExchange[c.curve.String()]++
		}
	}
	if ok > 0 {
		res.KiBPerSesson = round(float64(after-before)/float64(ok), 2)
	}
	if len(l.errs) > 0 {
		res.Errors = l.errs
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d sessions failed to sign in", res.Failed, cfg.clients)
	}
	return res, nil
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

func newPool(pem []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil
	}
	return p
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A chat message carries its step and send time in its body:
// "XB" + 2 hex digits of step + 16 hex digits of nanoseconds since the run
// began, so that the receiver finds it in the raw bytes with one search.
const (
	marker    = "XB"
	markerLen = len(marker) + 2 + 16
	maxSteps  = 256
)

// stepStats is what happened to the messages sent during one step.
type stepStats struct {
	sent      atomic.Int64
	delivered atomic.Int64
	errors    atomic.Int64
	hist      histogram
}

type chatState struct {
	cfg     *config
	base    time.Time
	clients []*client
	// room, for the muc scenario, is the room's JID: the first senders
	// clients send groupchat there, and every message is delivered to
	// fanout occupants. Empty for chat (one delivery per message).
	room    string
	senders int
	fanout  int64
	// from and to, for chat with fixed partners (-pairs other than
	// random): from[k] writes to to[k]; each pair of which both signed in
	// is there both ways.
	from, to []*client
	steps    [maxSteps]atomic.Pointer[stepStats]
	other    atomic.Int64 // messages received without our marker
	dropped  atomic.Int64 // clients whose stream ended
}

type chatStep struct {
	Offered   int     `json:"offered_per_s"`
	Sent      int64   `json:"sent"`
	SentPerS  float64 `json:"sent_per_s"`
	Delivered int64   `json:"delivered"`
	PerSecond float64 `json:"delivered_per_s"`
	Errors    int64   `json:"errors"`
	Loss      float64 `json:"loss"`
	Latency   latency `json:"latency_ms"`
	// With -cpu-pids: their CPU time over the step, from its start until
	// its messages are in (or the drain ends), per delivered message, and
	// that of the -db-comm processes and of this tool over the same span.
	ServerCPU   *float64 `json:"server_cpu_seconds,omitempty"`
	CPUPerMsgUS *float64 `json:"server_cpu_us_per_msg,omitempty"`
	DBCPU       *float64 `json:"db_cpu_seconds,omitempty"`
	LoadCPU     *float64 `json:"load_cpu_seconds,omitempty"`
}

// cpuSample is the CPU time of the -cpu-pids processes, of the -db-comm
// ones and of this tool at one moment.
type cpuSample struct{ server, db, load float64 }

func (st *chatState) sampleCPU() (cpuSample, error) {
	var s cpuSample
	for _, pid := range st.cfg.cpuPIDs {
		v, err := cpuSeconds(pid)
		if err != nil {
			return s, fmt.Errorf("-cpu-pids: %w", err)
		}
		s.server += v
	}
	s.db = commCPUSeconds(st.cfg.dbComm)
	s.load, _ = cpuSeconds(os.Getpid())
	return s, nil
}

type chatResult struct {
	Scenario string     `json:"scenario"`
	Server   string     `json:"server"`
	Clients  int        `json:"clients"`
	Senders  int        `json:"senders,omitempty"`
	Room     string     `json:"room,omitempty"`
	Addrs    int        `json:"addresses"`
	Pairs    string     `json:"pairs,omitempty"`
	Paired   int        `json:"paired_clients,omitempty"`
	Failed   int        `json:"failed_logins"`
	Steps    []chatStep `json:"steps"`
	Best     float64    `json:"best_delivered_per_s"`
	Dropped  int64      `json:"dropped_clients"`
}

// p99Limit is the latency under which a step counts towards the best rate.
const p99Limit = 100 * time.Millisecond

func runChat(ctx context.Context, cfg *config) (any, error) {
	if cfg.clients < 2 {
		return nil, fmt.Errorf("chat needs at least 2 clients")
	}
	return runMessages(ctx, cfg, "chat", nil)
}

// pairUp fills from and to with the partners of -pairs among the clients
// that signed in (by index, nil where the login failed).
func (st *chatState) pairUp(byIndex []*client) error {
	p, err := partners(st.cfg.pairs, len(byIndex), len(st.cfg.addrs))
	if err != nil || p == nil {
		return err
	}
	for i, j := range p {
		if byIndex[i] != nil && byIndex[j] != nil {
			st.from = append(st.from, byIndex[i])
			st.to = append(st.to, byIndex[j])
		}
	}
	if len(st.from) == 0 {
		return errors.New("no pair of clients has both signed in")
	}
	return nil
}

// runMessages signs the clients in, starts their readers, lets setup (the
// muc scenario's joins) prepare the state, then offers each rate in turn.
func runMessages(ctx context.Context, cfg *config, name string, setup func(context.Context, *chatState) error) (any, error) {
	if len(cfg.rates) > maxSteps {
		return nil, fmt.Errorf("at most %d rates", maxSteps)
	}
	l := loginAll(ctx, cfg, name, cfg.clients, true)
	defer l.closeAll()
	st := &chatState{cfg: cfg, base: time.Now(), clients: l.online(), fanout: 1}
	res := &chatResult{Scenario: name, Server: cfg.server, Clients: len(st.clients), Failed: int(l.failed.Load()), Addrs: len(cfg.addrs)}
	if len(st.clients) < 2 {
		return res, fmt.Errorf("only %d clients signed in: %v", len(st.clients), l.errs)
	}
	if setup == nil {
		res.Pairs = cfg.pairs
		if err := st.pairUp(l.clients); err != nil {
			return res, err
		}
		res.Paired = len(st.from)
	}
	var readers sync.WaitGroup
	for _, c := range st.clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			st.readLoop(c)
		}()
	}
	defer readers.Wait()
	defer l.closeAll()
	if setup != nil {
		if err := setup(ctx, st); err != nil {
			return res, err
		}
		res.Room, res.Senders = st.room, st.senders
	}
	for i, rate := range cfg.rates {
		if ctx.Err() != nil {
			break
		}
		s := st.runStep(ctx, i, rate)
		res.Steps = append(res.Steps, s)
		fmt.Fprintf(cfg.progress, "%s: offered %d/s: sent %.0f/s, delivered %.0f/s, loss %.4f, p50 %.1f ms, p99 %.1f ms\n",
			name, rate, s.SentPerS, s.PerSecond, s.Loss, s.Latency.P50, s.Latency.P99)
		if s.ServerCPU != nil {
			fmt.Fprintf(cfg.progress, "%s: offered %d/s: server CPU %.2f s, load tool CPU %.2f s\n", name, rate, *s.ServerCPU, *s.LoadCPU)
		}
		if s.Loss <= 0.001 && s.Latency.P99 < float64(p99Limit.Milliseconds()) && s.PerSecond > res.Best {
			res.Best = s.PerSecond
		}
		// Past saturation, higher rates only fill queues.
		if s.Loss > 0.05 || s.Latency.P99 > 2000 {
			break
		}
	}
	res.Dropped = st.dropped.Load()
	return res, ctx.Err()
}

// runStep offers rate messages per second for cfg.step, then waits for them.
func (st *chatState) runStep(ctx context.Context, step, rate int) chatStep {
	ss := new(stepStats)
	st.steps[step].Store(ss)
	senders := min(4, len(st.clients))
	if st.room != "" {
		senders = min(4, st.senders)
	} else if st.from != nil {
		senders = min(4, len(st.from))
	}
	var wg sync.WaitGroup
	cpuBefore, cpuErr := st.sampleCPU()
	start := time.Now()
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.send(ctx, ss, step, s, senders, float64(rate)/float64(senders))
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	deadline := time.Now().Add(st.cfg.drain)
	for ss.delivered.Load()+ss.errors.Load() < ss.sent.Load()*st.fanout && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	sent, got := ss.sent.Load(), ss.delivered.Load()
	out := chatStep{
		Offered:   rate,
		Sent:      sent,
		SentPerS:  round(float64(sent)/sendTime.Seconds(), 1),
		Delivered: got,
		PerSecond: round(float64(got)/sendTime.Seconds(), 1),
		Errors:    ss.errors.Load(),
		Latency:   ss.hist.summary(),
	}
	if want := sent * st.fanout; want > 0 {
		out.Loss = round(float64(want-got)/float64(want), 6)
	}
	if len(st.cfg.cpuPIDs) > 0 {
		cpuAfter, err := st.sampleCPU()
		if err = errors.Join(cpuErr, err); err != nil {
			// A node that died is the run's news; say so rather than
			// report a part of the cluster's CPU as all of it.
			fmt.Fprintf(st.cfg.progress, "%v\n", err)
			return out
		}
		server, load := round(cpuAfter.server-cpuBefore.server, 2), round(cpuAfter.load-cpuBefore.load, 2)
		out.ServerCPU, out.LoadCPU = &server, &load
		if got > 0 {
			us := round(1e6*(cpuAfter.server-cpuBefore.server)/float64(got), 2)
			out.CPUPerMsgUS = &us
		}
		if st.cfg.dbComm != "" {
			db := round(cpuAfter.db-cpuBefore.db, 2)
			out.DBCPU = &db
		}
	}
	return out
}

// send is one of the sending goroutines: it writes for the clients whose
// index is part modulo parts, to random online peers (or each to its
// partner, with fixed pairs), at rate per second, catching up every
// millisecond.
func (st *chatState) send(ctx context.Context, ss *stepStats, step, part, parts int, rate float64) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(part)))
	pool := len(st.clients)
	if st.room != "" {
		pool = st.senders
	} else if st.from != nil {
		pool = len(st.from)
	}
	mine := (pool - part + parts - 1) / parts
	if mine <= 0 {
		return
	}
	buf := make([]byte, 0, 256)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var sent int64
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		if elapsed >= st.cfg.step {
			return
		}
		due := int64(elapsed.Seconds()*rate) - sent
		for ; due > 0; due-- {
			fi := part + parts*rng.IntN(mine)
			from := st.clients[fi]
			if st.room != "" {
				buf = append(buf[:0], "<message type='groupchat' to='"...)
				buf = append(buf, st.room...)
			} else if st.from != nil {
				from = st.from[fi]
				buf = append(buf[:0], "<message type='chat' to='"...)
				buf = append(buf, st.to[fi].full...)
			} else {
				ti := rng.IntN(len(st.clients) - 1)
				if ti >= fi {
					ti++
				}
				buf = append(buf[:0], "<message type='chat' to='"...)
				buf = append(buf, st.clients[ti].full...)
			}
			buf = append(buf, "'><body>"...)
			buf = append(buf, marker...)
			buf = appendHex(buf, uint64(step), 2)
			buf = appendHex(buf, uint64(time.Since(st.base)), 16)
			buf = append(buf, "</body></message>"...)
			sent++
			ss.sent.Add(1)
			from.conn.Write(buf) // a failed write shows as loss
		}
		<-tick.C
	}
}

func appendHex(b []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hex[(v>>(4*uint(i)))&0xf])
	}
	return b
}

// readLoop counts the client's incoming messages until its connection ends.
func (st *chatState) readLoop(c *client) {
	for {
		if err := c.read(); err != nil {
			if !c.f.closed {
				st.dropped.Add(1)
			}
			return
		}
		for el := c.f.next(); el != nil; el = c.f.next() {
			if w := c.watch.Load(); w != nil {
				(*w)(el)
			}
			st.received(el)
		}
		if c.f.closed {
			st.dropped.Add(1)
			return
		}
	}
}

var messagePrefix = []byte("<message")

func (st *chatState) received(el []byte) {
	if !bytes.HasPrefix(el, messagePrefix) {
		return
	}
	i := bytes.Index(el, []byte(marker))
	if i < 0 || len(el)-i < markerLen {
		st.other.Add(1)
		return
	}
	step, ok1 := parseHex(el[i+2 : i+4])
	sent, ok2 := parseHex(el[i+4 : i+markerLen])
	var ss *stepStats
	if ok1 && ok2 {
		ss = st.steps[step].Load()
	}
	if ss == nil {
		st.other.Add(1)
		return
	}
	if isError(el) {
		ss.errors.Add(1)
		return
	}
	ss.delivered.Add(1)
	ss.hist.record(time.Since(st.base) - time.Duration(sent))
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// isError reports whether the element's start tag has type='error'.
func isError(el []byte) bool {
	end := bytes.IndexByte(el, '>')
	if end < 0 {
		return false
	}
	tag := el[:end]
	return bytes.Contains(tag, []byte(`type='error'`)) || bytes.Contains(tag, []byte(`type="error"`))
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The team scenario: every client is a member of one team (shared roster
// groups: xmppd's groups, ejabberd's mod_shared_roster, Prosody's
// mod_groups). Each signs in, gets its roster, sends initial presence and
// reads everything from then on. The team has settled when every member
// has seen every other member's available presence.

// teamResult is the JSON result of the team scenario.
type teamResult struct {
	Scenario string `json:"scenario"`
	Server   string `json:"server"`
	Clients  int    `json:"clients"`
	// Rate is -rate, logins started per second; 0 when Concurrency logins
	// ran at a time.
	Rate        int     `json:"rate_per_s,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	Seconds     float64 `json:"login_seconds"`
	PerSecond   float64 `json:"logins_per_s"`
	Latency     latency `json:"latency_ms"`
	RosterMin   int     `json:"roster_items_min"`
	RosterMax   int     `json:"roster_items_max"`
	Settled     bool    `json:"settled"`
	// SettleSeconds runs from the first login's start until the last
	// (member, other member) pair was seen; absent when it never was.
	SettleSeconds float64 `json:"settle_seconds,omitempty"`
	// SettleAfterLast runs from the last login's start until the team
	// settled: at a given -rate, the part of SettleSeconds that the server
	// decides (the rest is the schedule of logins).
	SettleAfterLast float64 `json:"settle_after_last_login_s,omitempty"`
	PairsSeen       int64   `json:"pairs_seen"`
	PairsWanted     int64   `json:"pairs_wanted"`
	// Presences counts every available presence from another member,
	// repeats included.
	Presences int64 `json:"presences_received"`
	// ServerCPU is the server's CPU time from before the first login until
	// the team settled (or the wait for it ended).
	ServerCPU     float64 `json:"server_cpu_seconds"`
	CPUMsPerLogin float64 `json:"cpu_ms_per_login"`
	// DBCPU is the same for the processes named -db-comm (the database
	// the server uses, which its own figure leaves out).
	DBCPU  *float64 `json:"db_cpu_seconds,omitempty"`
	DBComm string   `json:"db_comm,omitempty"`
	// LoadCPU is this tool's own CPU time over the same span: near the
	// span itself, the tool rather than the server set the pace.
	LoadCPU      float64        `json:"load_cpu_seconds"`
	RSSBefore    int            `json:"rss_before_kib"`
	RSSAfter     int            `json:"rss_after_kib"`
	KiBPerSesson float64        `json:"kib_per_session"`
	Dropped      int64          `json:"dropped_clients"`
	Errors       map[string]int `json:"errors,omitempty"`
}

// team is the state of one run: the members, who has seen whom, and when
// it settled.
type team struct {
	cfg     *config
	members []*member
	// index finds a member by bare JID, as servers write it in from.
	index   map[string]int
	want    int64
	pairs   atomic.Int64
	seen    atomic.Int64 // available presences from others, repeats included
	dropped atomic.Int64
	closing atomic.Bool
	settled chan struct{}
	settle  atomic.Int64 // UnixNano when the last pair was seen
	// lastStart is UnixNano when the last login (with -rate) started.
	lastStart atomic.Int64
	readers   sync.WaitGroup
}

// member is one client. Its reader alone writes seen.
type member struct {
	i    int
	c    *client
	seen []uint64 // bit j: member j's available presence arrived
	// roster gets the number of items in the roster result, or -1 when
	// the roster get failed or the stream ended first.
	roster chan int
	once   sync.Once
}

func runTeam(ctx context.Context, cfg *config) (any, error) {
	switch {
	case cfg.clients < 2:
		return nil, errors.New("team needs at least 2 clients")
	case cfg.pid == 0:
		return nil, errors.New("team needs the server's -pid")
	case cfg.sm:
		return nil, errors.New("team does not enable stream management (-sm)")
	case cfg.rate < 0:
		return nil, errors.New("-rate must not be negative")
	}
	n := cfg.clients
	t := &team{cfg: cfg, index: make(map[string]int, n), want: int64(n) * int64(n-1), settled: make(chan struct{})}
	for i := range n {
		t.index[cfg.user(i)+"@"+cfg.domain] = i
		t.members = append(t.members, &member{i: i, seen: make([]uint64, (n+63)/64), roster: make(chan int, 1)})
	}
	res := &teamResult{Scenario: "team", Server: cfg.server, Clients: n, Rate: cfg.rate, PairsWanted: t.want}
	if cfg.rate == 0 {
		res.Concurrency = cfg.concurrency
	}
	if cfg.dbComm != "" {
		res.DBComm = cfg.dbComm
	}
	rssBefore, err := rssKiB(cfg.pid)
	if err != nil {
		return nil, err
	}
	cpuBefore, err := cpuSeconds(cfg.pid)
	if err != nil {
		return nil, err
	}
	dbBefore := commCPUSeconds(cfg.dbComm)
	loadBefore, err := cpuSeconds(os.Getpid())
	if err != nil {
		return nil, err
	}

	start := time.Now()
	l := &logins{cfg: cfg, errs: map[string]int{}}
	rosters := make([]int, n) // -1: no roster
	stop := l.progress("team", n)
	t.loginAll(ctx, func(i int) {
		began := time.Now()
		items, err := t.login(ctx, t.members[i])
		rosters[i] = items
		if err != nil {
			l.fail(err)
			return
		}
		l.hist.record(time.Since(began))
		l.ok.Add(1)
	})
	stop()
	loginTime := time.Since(start)
	defer t.close()

	res.OK, res.Failed = int(l.ok.Load()), int(l.failed.Load())
	res.Seconds = round(loginTime.Seconds(), 3)
	res.PerSecond = round(float64(res.OK)/loginTime.Seconds(), 1)
	res.Latency = l.hist.summary()
	res.RosterMin, res.RosterMax = -1, -1
	for _, items := range rosters {
		if items < 0 {
			continue
		}
		if res.RosterMin < 0 || items < res.RosterMin {
			res.RosterMin = items
		}
		res.RosterMax = max(res.RosterMax, items)
	}
	var failure error
	if res.Failed > 0 {
		// A member who is not online is never seen: no use waiting.
		failure = fmt.Errorf("%d of %d logins failed", res.Failed, n)
	} else {
		failure = t.waitSettled(ctx)
	}
	res.PairsSeen, res.Presences = t.pairs.Load(), t.seen.Load()
	end := time.Now()
	if at := t.settle.Load(); at != 0 {
		res.Settled = true
		res.SettleSeconds = round(time.Unix(0, at).Sub(start).Seconds(), 3)
		if last := t.lastStart.Load(); last != 0 {
			res.SettleAfterLast = round(time.Unix(0, at).Sub(time.Unix(0, last)).Seconds(), 3)
		}
	}
	cpuAfter, err := cpuSeconds(cfg.pid)
	if err != nil {
		return nil, err
	}
	res.ServerCPU = round(cpuAfter-cpuBefore, 2)
	if res.OK > 0 {
		res.CPUMsPerLogin = round(1000*res.ServerCPU/float64(res.OK), 2)
	}
	if cfg.dbComm != "" {
		v := round(commCPUSeconds(cfg.dbComm)-dbBefore, 2)
		res.DBCPU = &v
	}
	if loadAfter, err := cpuSeconds(os.Getpid()); err == nil {
		res.LoadCPU = round(loadAfter-loadBefore, 2)
	}
	fmt.Fprintf(cfg.progress, "team: %d/%d pairs seen after %.1f s, server CPU %.2f s, load tool CPU %.2f s\n",
		res.PairsSeen, res.PairsWanted, end.Sub(start).Seconds(), res.ServerCPU, res.LoadCPU)

	// Memory once the sessions are quiet, as the idle scenario reads it.
	select {
	case <-time.After(cfg.settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if res.RSSAfter, err = rssKiB(cfg.pid); err != nil {
		return nil, err
	}
	res.RSSBefore = rssBefore
	if res.OK > 0 {
		res.KiBPerSesson = round(float64(res.RSSAfter-rssBefore)/float64(res.OK), 2)
	}
	res.Dropped = t.dropped.Load()
	if len(l.errs) > 0 {
		res.Errors = l.errs
	}
	if failure == nil && res.Dropped > 0 {
		failure = fmt.Errorf("%d clients were disconnected", res.Dropped)
	}
	return res, failure
}

// loginAll runs login for every member: -rate logins started per second,
// each as soon as it is due, or without -rate -concurrency at a time.
func (t *team) loginAll(ctx context.Context, login func(i int)) {
	n := len(t.members)
	var wg sync.WaitGroup
	defer wg.Wait()
	if rate := t.cfg.rate; rate > 0 {
		start := time.Now()
		for i := range n {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			if i == n-1 {
				t.lastStart.Store(time.Now().UnixNano())
			}
			go func() {
				defer wg.Done()
				login(i)
			}()
		}
		return
	}
	inTurn(ctx, n, t.cfg.concurrency, login)
}

// login signs a member in, asks for its roster and sends initial presence,
// then leaves the stream to the member's reader. It returns the number of
// roster items once the roster has arrived, or -1 and why not.
func (t *team) login(ctx context.Context, m *member) (int, error) {
	cfg := t.cfg
	c, err := dial(ctx, cfg, m.i)
	if err != nil {
		return -1, err
	}
	c.raw.SetDeadline(time.Now().Add(cfg.timeout))
	err = c.signIn(cfg, cfg.user(m.i))
	if err == nil {
		c.raw.SetDeadline(time.Time{})
		_, err = io.WriteString(c.conn, "<iq type='get' id='r'><query xmlns='"+nsRoster+"'/></iq><presence/>")
	}
	if err != nil {
		c.Close()
		return -1, err
	}
	m.c = c
	t.readers.Add(1)
	go func() {
		defer t.readers.Done()
		t.read(m)
	}()
	select {
	case items := <-m.roster:
		if items < 0 {
			return -1, errors.New("no roster: the roster get failed or the stream ended")
		}
		return items, nil
	case <-time.After(cfg.timeout):
		return -1, errors.New("no answer to the roster get")
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// waitSettled waits until every pair has been seen, for at most
// -settle-timeout after the last login.
func (t *team) waitSettled(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeout := time.After(t.cfg.settleTimeout)
	for {
		select {
		case <-t.settled:
			return nil
		case <-tick.C:
			fmt.Fprintf(t.cfg.progress, "team: %d/%d pairs seen\n", t.pairs.Load(), t.want)
		case <-timeout:
			return fmt.Errorf("not settled %v after the last login: %d of %d pairs seen",
				t.cfg.settleTimeout, t.pairs.Load(), t.want)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close ends every member's stream and waits for the readers.
func (t *team) close() {
	t.closing.Store(true)
	for _, m := range t.members {
		if m.c != nil {
			m.c.Close()
		}
	}
	t.readers.Wait()
}

// read handles what the server sends a member until the stream ends. It
// looks at presences and IQs only, by their raw bytes.
func (t *team) read(m *member) {
	defer m.once.Do(func() { m.roster <- -1 })
	c := m.c
	for {
		if err := c.read(); err != nil {
			if !t.closing.Load() {
				t.dropped.Add(1)
			}
			return
		}
		for el := c.f.next(); el != nil; el = c.f.next() {
			switch {
			case bytes.HasPrefix(el, presencePrefix):
				t.presence(m, el)
			case bytes.HasPrefix(el, iqPrefix):
				if err := t.iq(m, el); err != nil {
					return
				}
			}
		}
		if c.f.closed {
			if !t.closing.Load() {
				t.dropped.Add(1)
			}
			return
		}
	}
}

var (
	presencePrefix = []byte("<presence")
	iqPrefix       = []byte("<iq")
	itemTag        = []byte("<item ")
)

// presence counts an available presence from another member.
func (t *team) presence(m *member, el []byte) {
	tag := startTag(el)
	if typ, ok := attr(tag, "type"); ok && string(typ) != "available" {
		return // unavailable, probe, error, subscription
	}
	from, _ := attr(tag, "from")
	if i := bytes.IndexByte(from, '/'); i >= 0 {
		from = from[:i]
	}
	j, ok := t.index[string(from)]
	if !ok || j == m.i {
		return
	}
	t.seen.Add(1)
	if m.seen[j/64]&(1<<(j%64)) != 0 {
		return
	}
	m.seen[j/64] |= 1 << (j % 64)
	if t.pairs.Add(1) == t.want {
		t.settle.Store(time.Now().UnixNano())
		close(t.settled)
	}
}

// iq takes the roster result, and answers roster pushes and pings as a
// client must (RFC 6121 §2.1.6, XEP-0199).
func (t *team) iq(m *member, el []byte) error {
	tag := startTag(el)
	typ, _ := attr(tag, "type")
	id, _ := attr(tag, "id")
	switch string(typ) {
	case "result", "error":
		if string(id) == "r" {
			items := bytes.Count(el, itemTag)
			if string(typ) == "error" {
				items = -1
			}
			m.once.Do(func() { m.roster <- items })
		}
		return nil
	case "set", "get":
		if string(typ) == "get" && !bytes.Contains(el, []byte(nsPing)) {
			return nil
		}
		q := byte('\'')
		if bytes.IndexByte(id, q) >= 0 {
			q = '"'
		}
		_, err := io.WriteString(m.c.conn, "<iq type='result' id="+string(q)+string(id)+string(q)+"/>")
		return err
	}
	return nil
}

// startTag is an element's start tag, without its '>'.
func startTag(el []byte) []byte {
	if i := bytes.IndexByte(el, '>'); i >= 0 {
		return el[:i]
	}
	return el
}

// attr finds an attribute's raw value in a start tag.
func attr(tag []byte, name string) ([]byte, bool) {
	for i := 0; i < len(tag); {
		j := bytes.Index(tag[i:], []byte(name))
		if j < 0 {
			return nil, false
		}
		j += i
		k := j + len(name)
		if j > 0 && isSpace(tag[j-1]) && k+1 < len(tag) && tag[k] == '=' && (tag[k+1] == '\'' || tag[k+1] == '"') {
			if end := bytes.IndexByte(tag[k+2:], tag[k+1]); end >= 0 {
				return tag[k+2 : k+2+end], true
			}
			return nil, false
		}
		i = k
	}
	return nil, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on.
const clockTicks = 100

// cpuSeconds is a process's user and system CPU time so far, from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime, the 14th and 15th fields of
// /proc/PID/stat (proc(5)); the 2nd, the command, may hold spaces and is
// in parentheses.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unreadable CPU times in /proc stat")
	}
	return float64(utime+stime) / clockTicks, nil
}

// commCPUSeconds is the CPU time of every process whose command is comm
// (all of a database's backends), or 0 for "". Processes that start later
// count from zero; those that end in between are lost.
func commCPUSeconds(comm string) float64 {
	if comm == "" {
		return 0
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum float64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("("+comm+")")) {
			continue
		}
		if s, err := parseStatCPU(b); err == nil {
			sum += s
		}
	}
	return sum
}

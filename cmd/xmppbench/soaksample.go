package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// soakResult is the soak's JSON result.
type soakResult struct {
	Scenario           string         `json:"scenario"`
	Server             string         `json:"server"`
	Clients            int            `json:"clients"`
	Transports         map[string]int `json:"transports"`
	FirstLoginFailures int            `json:"first_login_failures"`
	SignInSeconds      float64        `json:"sign_in_seconds"`
	RunSeconds         float64        `json:"run_seconds"`
	Baseline           *soakSample    `json:"baseline"`
	Start              *soakSample    `json:"start"`
	Middle             *soakSample    `json:"middle"`
	End                *soakSample    `json:"end"`
	After              *soakSample    `json:"after"`
	Min                *soakFigures   `json:"min"`
	Max                *soakFigures   `json:"max"`
	Growth             *soakGrowth    `json:"growth_end_vs_start"`
	Samples            []*soakSample  `json:"-"`
	SampleCount        int            `json:"samples"`
	Chat               soakCounts     `json:"chat"`
	Room               soakCounts     `json:"room"`
	PresenceSent       int64          `json:"presence_sent"`
	PresenceReceived   int64          `json:"presence_received"`
	PingsAnswered      int64          `json:"server_pings_answered"`
	Logins             int64          `json:"logins"`
	LoginFailures      int64          `json:"login_failures"`
	LeftCleanly        int64          `json:"left_cleanly"`
	LeftAbruptly       int64          `json:"left_abruptly"`
	JoinFailures       int64          `json:"join_failures"`
	ServerClosed       int64          `json:"closed_by_server"`
	WriteFailures      int64          `json:"write_failures"`
	Errors             map[string]int `json:"errors,omitempty"`
	Log                *logScan       `json:"log,omitempty"`
}

// soakCounts is what happened to one kind of message. Lost is what should
// have arrived and did not; Unconfirmed what was sent from or to a
// connection the client cut while it may have been on its way.
type soakCounts struct {
	Sent        int64    `json:"sent"`
	Received    int64    `json:"received"`
	Deliveries  int64    `json:"deliveries_to_others,omitempty"`
	Lost        int64    `json:"lost"`
	Unconfirmed int64    `json:"unconfirmed"`
	Duplicates  int64    `json:"duplicates,omitempty"`
	Misrouted   int64    `json:"misrouted,omitempty"`
	Errors      int64    `json:"errors"`
	Latency     *latency `json:"latency_ms,omitempty"`
}

func (st *soakState) summarise(res *soakResult) {
	st.mu.Lock()
	for _, p := range st.pending {
		if p.from.cut(p.fromGen) || p.to.unsure(p.toGen, p.at) {
			res.Chat.Unconfirmed++
		} else {
			res.Chat.Lost++
		}
	}
	for _, p := range st.roomPending {
		if p.from.cut(p.fromGen) {
			res.Room.Unconfirmed++
		} else {
			res.Room.Lost++
		}
	}
	st.mu.Unlock()
	lat := st.hist.summary()
	res.Chat.Sent, res.Chat.Received, res.Chat.Duplicates = st.chatSent.Load(), st.chatRecv.Load(), st.chatDup.Load()
	res.Chat.Misrouted, res.Chat.Errors, res.Chat.Latency = st.misrouted.Load(), st.chatErrors.Load(), &lat
	res.Room.Sent, res.Room.Received, res.Room.Deliveries, res.Room.Errors = st.roomSent.Load(), st.roomEcho.Load(), st.roomDeliv.Load(), st.roomErrors.Load()
	res.PresenceSent, res.PresenceReceived, res.PingsAnswered = st.presSent.Load(), st.presRecv.Load(), st.pings.Load()
	res.Logins, res.LoginFailures = st.logins.Load(), st.loginFails.Load()
	res.LeftCleanly, res.LeftAbruptly = st.leftClean.Load(), st.leftAbrupt.Load()
	res.JoinFailures, res.ServerClosed, res.WriteFailures = st.joinFails.Load(), st.serverClosed.Load(), st.writeFails.Load()
	if len(st.errs) > 0 {
		res.Errors = st.errs
	}
	summariseSamples(res)
}

// soakSample is the server's figures at one moment of the soak, printed as
// a JSON line each: memory and open files from /proc/<-pid>, goroutines,
// heap and sessions from the admin listener's /metrics (-metrics-url).
type soakSample struct {
	Scenario     string  `json:"scenario"` // soak-sample
	Label        string  `json:"label,omitempty"`
	Seconds      float64 `json:"t_s"`
	Online       int64   `json:"clients_online"`
	RSSKiB       int     `json:"rss_kib"`
	FDs          int     `json:"fds"`
	Goroutines   int     `json:"goroutines"`
	HeapInuseKiB int     `json:"heap_inuse_kib"`
	Sessions     int     `json:"sessions"`
	BOSHSessions int     `json:"bosh_sessions"`
	ChatSent     int64   `json:"chat_sent"`
	ChatReceived int64   `json:"chat_received"`
	RoomSent     int64   `json:"room_sent"`
	Logins       int64   `json:"logins"`
	Error        string  `json:"error,omitempty"`
}

// soakFigures are the watched figures alone (for min and max).
type soakFigures struct {
	RSSKiB       int `json:"rss_kib"`
	FDs          int `json:"fds"`
	Goroutines   int `json:"goroutines"`
	HeapInuseKiB int `json:"heap_inuse_kib"`
}

// soakGrowth is the change from the start sample to the end one, in
// percent of the start.
type soakGrowth struct {
	RSS        float64 `json:"rss_pct"`
	FDs        float64 `json:"fds_pct"`
	Goroutines float64 `json:"goroutines_pct"`
	HeapInuse  float64 `json:"heap_inuse_pct"`
}

type sampler struct {
	cfg       *config
	st        *soakState
	begin     time.Time
	logOffset int64
	hc        *http.Client

	mu      sync.Mutex
	enc     *json.Encoder
	samples []*soakSample // start, the periodic ones, end
}

func newSampler(cfg *config, st *soakState) *sampler {
	s := &sampler{cfg: cfg, st: st, begin: time.Now(), hc: &http.Client{Timeout: 10 * time.Second}}
	if cfg.out != nil {
		s.enc = json.NewEncoder(cfg.out)
	}
	if fi, err := os.Stat(cfg.soak.logPath); err == nil && cfg.soak.logPath != "" {
		s.logOffset = fi.Size() // only what this run logs counts
	}
	return s
}

// take reads the figures now, prints them and, but for the baseline and
// the after sample, keeps them.
func (s *sampler) take(ctx context.Context, label string) *soakSample {
	st := s.st
	smp := &soakSample{Scenario: "soak-sample", Label: label, Seconds: round(time.Since(s.begin).Seconds(), 1),
		Online: st.online.Load(), ChatSent: st.chatSent.Load(), ChatReceived: st.chatRecv.Load(),
		RoomSent: st.roomSent.Load(), Logins: st.logins.Load()}
	var errs []string
	if pid := s.cfg.pid; pid > 0 {
		var err error
		if smp.RSSKiB, err = rssKiB(pid); err != nil {
			errs = append(errs, err.Error())
		}
		if ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err != nil {
			errs = append(errs, err.Error())
		} else {
			smp.FDs = len(ents)
		}
	}
	if u := s.cfg.soak.metricsURL; u != "" {
		m, err := s.metrics(ctx, u)
		if err != nil {
			errs = append(errs, err.Error())
		}
		smp.Goroutines = int(m["go_goroutines"])
		smp.HeapInuseKiB = int(m["go_memstats_heap_inuse_bytes"] / 1024)
		smp.Sessions = int(m["xmppd_sessions"])
		smp.BOSHSessions = int(m["xmppd_bosh_sessions"])
		if smp.RSSKiB == 0 {
			smp.RSSKiB = int(m["process_resident_memory_bytes"] / 1024)
		}
		if smp.FDs == 0 {
			smp.FDs = int(m["process_open_fds"])
		}
	}
	smp.Error = strings.Join(errs, "; ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc != nil {
		s.enc.Encode(smp)
	}
	if label != "baseline" && label != "after" {
		s.samples = append(s.samples, smp)
	}
	fmt.Fprintf(s.cfg.progress, "soak: %5.0f s %-8s online %d, RSS %d KiB, fds %d, goroutines %d, heap %d KiB, chat %d/%d\n",
		smp.Seconds, label, smp.Online, smp.RSSKiB, smp.FDs, smp.Goroutines, smp.HeapInuseKiB, smp.ChatReceived, smp.ChatSent)
	return smp
}

// metrics reads the Prometheus text format, summing the series of each
// name over their labels.
func (s *sampler) metrics(ctx context.Context, url string) (map[string]float64, error) {
	out := map[string]float64{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return out, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("%s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

// loop takes a sample every -sample-every until ctx ends.
func (s *sampler) loop(ctx context.Context) {
	t := time.NewTicker(s.cfg.soak.sample)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.take(ctx, "")
		case <-ctx.Done():
			return
		}
	}
}

func (s *sampler) series() []*soakSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*soakSample(nil), s.samples...)
}

// settle waits, after everyone has left, until the server has no session
// and about the goroutines it had before the run (BOSH sessions cut
// abruptly end at their inactivity timeout), for at most -soak-settle, and
// samples it then.
func (s *sampler) settle(ctx context.Context, baseline *soakSample) *soakSample {
	if s.cfg.soak.metricsURL == "" {
		return s.take(ctx, "after")
	}
	deadline := time.Now().Add(s.cfg.soak.settle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, err := s.metrics(ctx, s.cfg.soak.metricsURL)
		if err == nil && m["xmppd_sessions"] == 0 && m["xmppd_bosh_sessions"] == 0 &&
			int(m["go_goroutines"]) <= baseline.Goroutines+baseline.Goroutines/10+5 {
			break
		}
		time.Sleep(time.Second)
	}
	return s.take(ctx, "after")
}

func figures(s *soakSample) soakFigures {
	return soakFigures{RSSKiB: s.RSSKiB, FDs: s.FDs, Goroutines: s.Goroutines, HeapInuseKiB: s.HeapInuseKiB}
}

// summariseSamples finds the middle sample, the extremes and the growth.
func summariseSamples(res *soakResult) {
	res.SampleCount = len(res.Samples)
	if res.Start == nil || res.End == nil || len(res.Samples) == 0 {
		return
	}
	mid := (res.Start.Seconds + res.End.Seconds) / 2
	lo, hi := figures(res.Samples[0]), figures(res.Samples[0])
	for _, s := range res.Samples {
		if res.Middle == nil || abs(s.Seconds-mid) < abs(res.Middle.Seconds-mid) {
			res.Middle = s
		}
		f := figures(s)
		lo = soakFigures{min(lo.RSSKiB, f.RSSKiB), min(lo.FDs, f.FDs), min(lo.Goroutines, f.Goroutines), min(lo.HeapInuseKiB, f.HeapInuseKiB)}
		hi = soakFigures{max(hi.RSSKiB, f.RSSKiB), max(hi.FDs, f.FDs), max(hi.Goroutines, f.Goroutines), max(hi.HeapInuseKiB, f.HeapInuseKiB)}
	}
	res.Min, res.Max = &lo, &hi
	pct := func(a, b int) float64 {
		if a == 0 {
			return 0
		}
		return round(100*float64(b-a)/float64(a), 1)
	}
	a, b := res.Start, res.End
	res.Growth = &soakGrowth{RSS: pct(a.RSSKiB, b.RSSKiB), FDs: pct(a.FDs, b.FDs), Goroutines: pct(a.Goroutines, b.Goroutines), HeapInuse: pct(a.HeapInuseKiB, b.HeapInuseKiB)}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// logScan counts the warnings and errors xmppd logged during the run.
type logScan struct {
	Path     string   `json:"path"`
	Lines    int      `json:"lines"`
	Errors   int      `json:"errors"`
	Warnings int      `json:"warnings"`
	First    []string `json:"first,omitempty"` // the first few of them
	Error    string   `json:"error,omitempty"`
}

// scanLog reads xmppd's log (log/slog's text format) from offset.
func scanLog(path string, offset int64) *logScan {
	if path == "" {
		return nil
	}
	ls := &logScan{Path: path}
	f, err := os.Open(path)
	if err != nil {
		ls.Error = err.Error()
		return ls
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		ls.Error = err.Error()
		return ls
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		ls.Lines++
		isErr, isWarn := strings.Contains(line, " level=ERROR "), strings.Contains(line, " level=WARN ")
		switch {
		case isErr:
			ls.Errors++
		case isWarn:
			ls.Warnings++
		default:
			continue
		}
		if len(ls.First) < 10 {
			ls.First = append(ls.First, line[:min(len(line), 300)])
		}
	}
	if err := sc.Err(); err != nil {
		ls.Error = err.Error()
	}
	return ls
}

package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/xmppd/xmppd/internal/metrics"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage/redis"
	"github.com/xmppd/xmppd/storage/redis/redistest"
	"github.com/xmppd/xmppd/xmpp"
)

// served starts a server on backend with metrics on, as cmd/xmppd wires
// them, and the admin handler in front of it.
func served(t *testing.T, backend string) (*testenv.Server, *metrics.Metrics, string) {
	t.Helper()
	m := metrics.New()
	srv := testenv.Start(t, backend, func(s *xmpp.Server) {
		s.Metrics = m
		s.Store = m.WrapStore(s.Store)
	})
	m.Watch(srv.Server)
	m.WatchBOSH(srv.BOSH)
	mux := http.NewServeMux()
	metrics.Register(mux, m, &metrics.Probes{Checks: []metrics.Check{
		metrics.StoreCheck(srv.Store), metrics.ServerCheck(srv.Server),
	}})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return srv, m, hs.URL
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics as Prometheus does.
func scrape(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams, body
}

// value is the sample of family name whose labels include want (a
// histogram's sample count); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	total, found := 0.0, false
next:
	for _, m := range f.Metric {
		for k, v := range want {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}

// TestMetricsOfARealServer signs two clients in, has them exchange
// messages and a third fail to authenticate, and reads what /metrics
// says about it; then checks that every metric the Grafana dashboard
// queries is served.
func TestMetricsOfARealServer(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		srv, _, base := served(t, backend)
		fams, _ := scrape(t, base)
		for _, kind := range []string{"message", "presence", "iq"} {
			if v := value(fams, "xmppd_stanzas_in_total", map[string]string{"kind": kind}); v != 0 {
				t.Errorf("before any client, stanzas in (%s) = %v, want 0", kind, v)
			}
		}
		if v := value(fams, "xmppd_sessions", map[string]string{"transport": "tcp"}); v != 0 {
			t.Errorf("before any client, tcp sessions = %v, want 0", v)
		}

		alice := srv.Dial(t, srv.AddUser(t, "alice", "pw"), "pw", "a")
		bob := srv.Dial(t, srv.AddUser(t, "bob", "pw"), "pw", "b")
		testenv.Exchange(t, alice, bob)
		testenv.Exchange(t, bob, alice)
		if _, err := srv.DialFrom(t, "127.0.0.2", alice.JID.Bare(), "wrong", "c"); err == nil {
			t.Fatal("signed in with a wrong password")
		}

		checks := []struct {
			name   string
			labels map[string]string
			min    float64
		}{
			{"xmppd_sessions", map[string]string{"transport": "tcp"}, 2},
			{"xmppd_stanzas_in_total", map[string]string{"kind": "message"}, 2},
			{"xmppd_stanzas_out_total", map[string]string{"kind": "message"}, 2},
			{"xmppd_routing_duration_seconds", map[string]string{"kind": "message"}, 2},
			{"xmppd_auth_failures_total", map[string]string{"mechanism": "PLAIN", "reason": "credentials"}, 1},
			{"xmppd_storage_duration_seconds", map[string]string{"operation": "Credentials"}, 3},
		}
		// A recipient may read a stanza before its sender's count is
		// added: the counts are awaited.
		var body string
		for deadline := time.Now().Add(testenv.Timeout); ; {
			fams, body = scrape(t, base)
			var short []string
			for _, c := range checks {
				if v := value(fams, c.name, c.labels); v < c.min {
					short = append(short, fmt.Sprintf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min))
				}
			}
			if len(short) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(strings.Join(short, "\n"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if v := value(fams, "xmppd_sessions", map[string]string{"transport": "tcp"}); v != 2 {
			t.Errorf("tcp sessions = %v, want 2 (alice and bob)", v)
		}
		for _, name := range []string{"xmppd_sessions_hibernated", "xmppd_s2s_streams", "xmppd_bosh_sessions",
			"xmppd_sessions_dropped_total", "xmppd_stanzas_dropped_total", "go_goroutines", "process_resident_memory_bytes"} {
			if fams[name] == nil {
				t.Errorf("/metrics has no %s", name)
			}
		}
		dashboardMetricsServed(t, body)

		if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz: %d %q", code, body)
		}
		code, body := get(t, base+"/readyz")
		var r struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || r.Checks["storage"] != "ok" {
			t.Errorf("/readyz with %s: %d %s (%v)", backend, code, body, err)
		}
	})
}

// metricName finds the names in PromQL expressions: ours, Go's and the
// process's.
var metricName = regexp.MustCompile(`\b(?:xmppd|go|process)_[a-zA-Z0-9_]+`)

// dashboardMetricsServed fails t for every metric docs/grafana/xmppd.json
// queries that body (a /metrics page) does not have.
func dashboardMetricsServed(t *testing.T, body string) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/grafana/xmppd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		served[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	exprs := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs++
					names := metricName.FindAllString(s, -1)
					if len(names) == 0 {
						t.Errorf("dashboard expression %q queries no metric of ours", s)
					}
					for _, n := range names {
						if !served[n] {
							t.Errorf("the dashboard queries %s (in %q), which /metrics does not serve", n, s)
						}
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if exprs < 10 {
		t.Errorf("the dashboard has %d expressions; want one panel per metric at least", exprs)
	}
}

// TestReadyzFailsWhenStorageIsClosed: a store that does not answer makes
// the server unready, and the body says which check failed.
func TestReadyzFailsWhenStorageIsClosed(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		p := &metrics.Probes{Checks: []metrics.Check{metrics.StoreCheck(st)}}
		rec := httptest.NewRecorder()
		p.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("open store: %d %s", rec.Code, rec.Body)
		}
		st.Close()
		rec = httptest.NewRecorder()
		start := time.Now()
		p.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		var r struct {
			Status string
			Checks map[string]string
		}
		json.Unmarshal(rec.Body.Bytes(), &r)
		if rec.Code != http.StatusServiceUnavailable || r.Status != "unavailable" || r.Checks["storage"] == "" || r.Checks["storage"] == "ok" {
			t.Errorf("closed store: %d %s", rec.Code, rec.Body)
		}
		if d := time.Since(start); d > metrics.DefaultProbeTimeout+time.Second {
			t.Errorf("readyz took %v", d)
		}
	})
}

// TestReadyzFollowsRedis: with presence in Redis, the server is ready while
// Redis answers PING, and not once nothing listens at Redis's address any
// more. The registry reaches the real Redis through a loopback relay that
// the test closes.
func TestReadyzFollowsRedis(t *testing.T) {
	target := redistest.Addr(t)
	prefix := redistest.Prefix(t)
	l := testenv.Listen(t)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, r)
			mu.Unlock()
			go func() { io.Copy(r, c); r.Close() }()
			go func() { io.Copy(c, r); c.Close() }()
		}
	}()
	reg, err := redis.Open(context.Background(), redis.Options{Addr: l.Addr().String(), Prefix: prefix, Node: "readyz", TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	p := &metrics.Probes{Checks: []metrics.Check{metrics.PingCheck("redis", reg)}, Timeout: time.Second}
	ready := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		p.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		var r struct{ Checks map[string]string }
		json.Unmarshal(rec.Body.Bytes(), &r)
		return rec.Code, r.Checks
	}
	if code, checks := ready(); code != http.StatusOK || checks["redis"] != "ok" {
		t.Fatalf("Redis up: %d %v", code, checks)
	}
	l.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	if code, checks := ready(); code != http.StatusServiceUnavailable || checks["redis"] == "ok" || checks["redis"] == "" {
		t.Errorf("Redis gone: %d %v", code, checks)
	}
}

// TestFederationMetrics: a message to another server counts out on the
// sender's and in on the recipient's, each sees the stream it has, and
// nothing is dropped.
func TestFederationMetrics(t *testing.T) {
	var ms []*metrics.Metrics
	local, remote := testenv.StartPair(t, "sqlite", "remote.test", func(s *xmpp.Server) {
		m := metrics.New()
		s.Metrics = m
		ms = append(ms, m)
	})
	ms[0].Watch(local.Server)
	ms[1].Watch(remote.Server)
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	testenv.Exchange(t, alice, bob)
	gather := func(m *metrics.Metrics) map[string]*dto.MetricFamily {
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*dto.MetricFamily{}
		for _, f := range fams {
			byName[f.GetName()] = f
		}
		return byName
	}
	// A count may follow its stanza by a moment: they are awaited.
	var short []string
	for deadline := time.Now().Add(testenv.Timeout); ; time.Sleep(10 * time.Millisecond) {
		l, r := gather(ms[0]), gather(ms[1])
		short = nil
		for _, c := range []struct {
			what     string
			got, min float64
		}{
			{"sender's outgoing streams", value(l, "xmppd_s2s_streams", map[string]string{"direction": "out"}), 1},
			{"recipient's incoming streams", value(r, "xmppd_s2s_streams", map[string]string{"direction": "in"}), 1},
			{"sender's messages out", value(l, "xmppd_stanzas_out_total", map[string]string{"kind": "message"}), 1},
			{"recipient's messages in", value(r, "xmppd_stanzas_in_total", map[string]string{"kind": "message"}), 1},
		} {
			if c.got < c.min {
				short = append(short, fmt.Sprintf("%s = %v, want at least %v", c.what, c.got, c.min))
			}
		}
		if v := value(l, "xmppd_s2s_streams", map[string]string{"direction": "out"}); v > 1 {
			t.Fatalf("sender's outgoing streams = %v, want 1", v)
		}
		if v := value(l, "xmppd_stanzas_dropped_total", nil); v != 0 {
			t.Fatalf("dropped = %v", v)
		}
		if len(short) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(strings.Join(short, "\n"))
		}
	}
}

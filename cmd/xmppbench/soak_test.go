package main

import (
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/xmppd/xmppd/bosh"
	"github.com/xmppd/xmppd/internal/metrics"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// TestSoak runs a short soak against xmppd over TCP, WebSocket and BOSH:
// clients talk, change presence, use rooms, leave cleanly and abruptly and
// come back; every message that must arrive does, the server is sampled
// (memory, open files, goroutines from its /metrics) and, once everyone has
// left, has no session left.
func TestSoak(t *testing.T) {
	m := metrics.New()
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true})
		s.Metrics = m
	})
	const clients = 30
	users(t, s, clients)

	// A BOSH endpoint of its own, whose sessions that clients drop end
	// after 3 s rather than a minute, and the admin listener's /metrics.
	bh := &bosh.Handler{Server: s.Server, Policy: s.Web, Inactivity: 3 * time.Second}
	m.Watch(s.Server)
	m.WatchBOSH(bh)
	mux := http.NewServeMux()
	mux.Handle("/http-bind", bh)
	mux.Handle("/metrics", m.Handler())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	web := "http://" + l.Addr().String()

	res := bench(t, 0, "-scenario", "soak", "-server", "test", "-domain", testenv.Domain,
		"-addr", s.C2S, "-url", s.WebSocketURL(), "-bosh-url", web+"/http-bind", "-metrics-url", web+"/metrics",
		"-pid", strconv.Itoa(os.Getpid()), "-clients", strconv.Itoa(clients), "-concurrency", "10", "-rate", "300",
		"-duration", "8s", "-sample-every", "2s", "-msg-every", "1s", "-presence-every", "3s",
		"-rooms", "3", "-room-share", "0.5", "-room-msg-every", "2s", "-leave-every", "4s", "-away", "1s",
		"-soak-drain", "10s", "-soak-settle", "20s", "-timeout", "60s")
	var samples []map[string]any
	var r map[string]any
	for _, x := range res {
		switch x["scenario"] {
		case "soak-sample":
			samples = append(samples, x)
		case "soak":
			r = x
		}
	}
	if r == nil {
		t.Fatalf("no soak result in %v", res)
	}
	t.Logf("result: %v", r)
	if got := r["transports"].(map[string]any); got["tcp"] != 10.0 || got["ws"] != 10.0 || got["bosh"] != 10.0 {
		t.Errorf("clients per transport: %v, want 10 each", got)
	}
	chat, room := r["chat"].(map[string]any), r["room"].(map[string]any)
	if chat["sent"].(float64) < 100 || chat["lost"] != 0.0 || chat["errors"] != 0.0 || chat["misrouted"] != nil {
		t.Errorf("chat: %v", chat)
	}
	if chat["received"].(float64) < chat["sent"].(float64)-chat["unconfirmed"].(float64) {
		t.Errorf("chat: fewer received than sent and not excused: %v", chat)
	}
	if room["sent"].(float64) < 10 || room["lost"] != 0.0 || room["deliveries_to_others"].(float64) <= 0 {
		t.Errorf("room: %v", room)
	}
	if r["left_cleanly"].(float64) < 5 || r["left_abruptly"].(float64) < 5 || r["presence_sent"].(float64) < 20 {
		t.Errorf("too few leaves or presence changes: %v", r)
	}
	if r["closed_by_server"] != 0.0 || r["login_failures"] != 0.0 || r["join_failures"] != 0.0 || r["errors"] != nil {
		t.Errorf("something failed: %v", r)
	}
	// baseline, start, at least three periodic ones, end, after.
	if len(samples) < 6 {
		t.Errorf("%d samples: %v", len(samples), samples)
	}
	for _, smp := range samples {
		if smp["rss_kib"].(float64) <= 0 || smp["fds"].(float64) <= 0 || smp["goroutines"].(float64) <= 0 || smp["error"] != nil {
			t.Errorf("sample without figures: %v", smp)
		}
	}
	for _, k := range []string{"start", "middle", "end", "after", "min", "max", "growth_end_vs_start"} {
		if r[k] == nil {
			t.Errorf("no %s in the result", k)
		}
	}
	if start := r["start"].(map[string]any); start["sessions"] != float64(clients) {
		t.Errorf("start: %v sessions, want %d", start["sessions"], clients)
	}
	if after := r["after"].(map[string]any); after["sessions"] != 0.0 || after["bosh_sessions"] != 0.0 {
		t.Errorf("after everyone left, the server still has sessions: %v", after)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// TestFramer cuts the same stream into elements whatever the read sizes.
func TestFramer(t *testing.T) {
	stream := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version="1.0">` +
		`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>` +
		"\n  " +
		`<message to='a@b' note="x>y/z"><body>1 &gt; 0 / 2</body></message>` +
		`<presence/>` +
		` <iq type='result' id='a'/>` +
		`<message><![CDATA[ignored]]><x a='/'/></message>` +
		`</stream:stream>`
	want := []string{
		`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
		`<message to='a@b' note="x>y/z"><body>1 &gt; 0 / 2</body></message>`,
		`<presence/>`,
		`<iq type='result' id='a'/>`,
		`<message><![CDATA[ignored]]><x a='/'/></message>`,
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, len(stream)} {
		f := newFramer(8)
		var got []string
		in := stream
		for len(in) > 0 {
			n := copy(f.space(), in[:min(chunk, len(in))])
			f.filled(n)
			in = in[n:]
			for el := f.next(); el != nil; el = f.next() {
				got = append(got, string(el))
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("chunks of %d: got\n%q\nwant\n%q", chunk, got, want)
		}
		if !f.opened || !f.closed {
			t.Errorf("chunks of %d: opened %v, closed %v", chunk, f.opened, f.closed)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if d := got - tc.want; d < -tc.want/32 || d > tc.want/32 {
			t.Errorf("quantile %v = %v, want %v ± 3%%", tc.q, got, tc.want)
		}
	}
	if s := h.summary(); s.Max != 1000 {
		t.Errorf("max = %v ms, want 1000", s.Max)
	}
	for us := uint64(0); us < 1<<24; us = us*5/4 + 1 {
		if b := bucket(us); lower(b) > us || lower(b+1) <= us {
			t.Fatalf("%d µs in bucket %d = [%d, %d)", us, b, lower(b), lower(b+1))
		}
	}
}

// bench runs xmppbench against a test server and returns its results.
func bench(t *testing.T, wantStatus int, args ...string) []map[string]any {
	t.Helper()
	var out, errs bytes.Buffer
	if got := run(args, &out, &errs); got != wantStatus {
		t.Fatalf("xmppbench %q exited %d, want %d; stderr:\n%s", args, got, wantStatus, errs.String())
	}
	var res []map[string]any
	d := json.NewDecoder(&out)
	for d.More() {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		res = append(res, m)
	}
	return res
}

func users(t *testing.T, s *testenv.Server, n int) {
	for i := 1; i <= n; i++ {
		s.AddUser(t, "bench"+strconv.Itoa(i), "benchpass")
	}
}

// TestScenarios runs each scenario against xmppd: every login succeeds, the
// idle sessions are counted against this process's memory, and every chat
// message arrives.
func TestScenarios(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true})
	})
	users(t, s, 10)
	common := []string{"-addr", s.C2S, "-domain", testenv.Domain, "-clients", "10", "-concurrency", "4", "-server", "test"}
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"} {
		res := bench(t, 0, append(common, "-scenario", "login", "-mech", mech)...)
		r := res[0]
		if r["scenario"] != "login" || r["ok"] != 10.0 || r["failed"] != 0.0 || r["mech"] != mech || r["server"] != "test" {
			t.Errorf("%s: %v", mech, r)
		}
		if r["logins_per_s"].(float64) <= 0 {
			t.Errorf("%s: logins_per_s %v", mech, r["logins_per_s"])
		}
		if mech != "PLAIN" && r["scram_iterations"] != 4096.0 {
			t.Errorf("%s: scram_iterations %v, want the server's 4096", mech, r["scram_iterations"])
		}
	}

	res := bench(t, 0, append(common, "-scenario", "idle,chat,muc", "-pid", strconv.Itoa(os.Getpid()),
		"-settle", "10ms", "-rates", "200,400", "-step", "500ms", "-senders", "3")...)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3: %v", len(res), res)
	}
	idle, chat, muc := res[0], res[1], res[2]
	if idle["sessions"] != 10.0 || idle["rss_after_kib"].(float64) <= 0 {
		t.Errorf("idle: %v", idle)
	}
	if idle["curves"] != "classic" || fmt.Sprint(idle["key_exchange"]) != "map[X25519:10]" {
		t.Errorf("idle offers X25519 and P-256 by default, and the server takes X25519: %v", idle)
	}
	steps := chat["steps"].([]any)
	if len(steps) != 2 {
		t.Fatalf("chat: %d steps, want 2: %v", len(steps), chat)
	}
	for _, st := range steps {
		st := st.(map[string]any)
		sent := st["sent"].(float64)
		if sent < 50 || st["delivered"] != sent || st["loss"] != 0.0 || st["errors"] != 0.0 {
			t.Errorf("chat step: %v", st)
		}
	}
	if chat["best_delivered_per_s"].(float64) <= 0 || chat["dropped_clients"] != 0.0 {
		t.Errorf("chat: %v", chat)
	}
	if muc["room"] != "bench@conference.localhost" || muc["senders"] != 3.0 {
		t.Errorf("muc: %v", muc)
	}
	for _, st := range muc["steps"].([]any) {
		st := st.(map[string]any)
		sent := st["sent"].(float64)
		if sent < 20 || st["delivered"] != sent*10 || st["loss"] != 0.0 {
			t.Errorf("muc step: every message should reach all 10 occupants: %v", st)
		}
	}
}

// TestIdleCurves offers Go's default key exchange with -curves default: the
// server takes the hybrid X25519MLKEM768, and the result says so.
func TestIdleCurves(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	users(t, s, 4)
	res := bench(t, 0, "-addr", s.C2S, "-domain", testenv.Domain, "-clients", "4", "-scenario", "idle",
		"-pid", strconv.Itoa(os.Getpid()), "-settle", "10ms", "-curves", "default")
	if r := res[0]; r["sessions"] != 4.0 || r["curves"] != "default" || fmt.Sprint(r["key_exchange"]) != "map[X25519MLKEM768:4]" {
		t.Errorf("idle -curves default: %v", r)
	}
}

// TestWebSocket runs the login and chat scenarios over WebSocket (RFC
// 7395), as they run over TCP.
func TestWebSocket(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	users(t, s, 10)
	res := bench(t, 0, "-url", s.WebSocketURL(), "-domain", testenv.Domain, "-clients", "10", "-concurrency", "4",
		"-scenario", "login,chat", "-mech", "SCRAM-SHA-256", "-rates", "200", "-step", "500ms")
	login, chat := res[0], res[1]
	if login["ok"] != 10.0 || login["failed"] != 0.0 {
		t.Errorf("login over WebSocket: %v", login)
	}
	st := chat["steps"].([]any)[0].(map[string]any)
	if sent := st["sent"].(float64); sent < 50 || st["delivered"] != sent || st["loss"] != 0.0 {
		t.Errorf("chat over WebSocket: %v", st)
	}
}

// TestWrongPassword reports failed logins, with the server's answer, and
// exits with status 1.
func TestWrongPassword(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	users(t, s, 2)
	res := bench(t, 1, "-addr", s.C2S, "-clients", "2", "-password", "wrong", "-scenario", "login", "-mech", "PLAIN")
	r := res[0]
	if r["ok"] != 0.0 || r["failed"] != 2.0 || !strings.Contains(fmt.Sprint(r["errors"]), "not-authorized") {
		t.Errorf("login with a wrong password: %v", r)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-user", "bench"},
		{"-mech", "DIGEST-MD5"},
		{"-sources", "localhost"},
		{"-rates", "10,x"},
		{"-clients", "0"},
		{"-curves", "X25519"},
		{"-addr", "127.0.0.1:5222,nowhere"},
		{"-pairs", "ring"},
		{"-cpu-pids", "1,x"},
		{"-pairs", "cross"},
		{"-pairs", "half", "-clients", "10", "-addr", "127.0.0.1:1,127.0.0.1:2"},
		{"-transports", "tcp,quic"},
		{"-scenario", "soak", "-bosh-url", "http://127.0.0.1:1/http-bind"}, // ws without -url
		{"-scenario", "soak", "-url", "ws://127.0.0.1:1/ws"},               // bosh without -bosh-url
		{"-scenario", "soak", "-transports", "tcp", "-duration", "0s"},     // no duration
		{"-scenario", "soak", "-transports", "tcp", "-room-share", "1.5"},  // not a fraction
		{"extra"},
	} {
		var out, errs bytes.Buffer
		if got := run(args, &out, &errs); got != 2 || errs.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, got, errs.String())
		}
	}
}

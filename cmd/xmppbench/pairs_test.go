package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestPartners checks every fixed pairing against what -pairs promises:
// each client in exactly one pair, and the pairs on one address (local),
// on two (cross), or exactly half of them on two (half), with client i on
// address i mod n.
func TestPartners(t *testing.T) {
	for _, tc := range []struct {
		mode           string
		clients, addrs int
		wantCross      int // pairs across addresses
	}{
		{pairsCross, 8, 2, 4},
		{pairsCross, 240, 3, 120},
		{pairsLocal, 8, 1, 0},
		{pairsLocal, 8, 2, 0},
		{pairsLocal, 240, 3, 0},
		{pairsHalf, 8, 1, 0},
		{pairsHalf, 8, 2, 2},
		{pairsHalf, 240, 2, 60},
		{pairsHalf, 240, 3, 60},
	} {
		p, err := partners(tc.mode, tc.clients, tc.addrs)
		if err != nil {
			t.Errorf("%s, %d clients, %d addresses: %v", tc.mode, tc.clients, tc.addrs, err)
			continue
		}
		if len(p) != tc.clients {
			t.Errorf("%s, %d clients: %d partners", tc.mode, tc.clients, len(p))
			continue
		}
		cross := 0
		for i, j := range p {
			if j == i || j < 0 || j >= tc.clients || p[j] != i {
				t.Errorf("%s, %d clients, %d addresses: client %d's partner is %d, whose partner is %d", tc.mode, tc.clients, tc.addrs, i, j, p[j])
				break
			}
			if i < j && i%tc.addrs != j%tc.addrs {
				cross++
			}
		}
		if cross != tc.wantCross {
			t.Errorf("%s, %d clients, %d addresses: %d of %d pairs across addresses, want %d: %v", tc.mode, tc.clients, tc.addrs, cross, tc.clients/2, tc.wantCross, p)
		}
	}
	// The first block of half with two addresses, spelled out.
	p, _ := partners(pairsHalf, 8, 2)
	if got, want := p, []int{1, 0, 3, 2, 6, 7, 4, 5}; !equalInts(got, want) {
		t.Errorf("half, 8 clients, 2 addresses: %v, want %v", got, want)
	}
	if p, err := partners(pairsRandom, 7, 2); p != nil || err != nil {
		t.Errorf("random: %v, %v; want no fixed partners", p, err)
	}
	for _, tc := range []struct {
		mode           string
		clients, addrs int
		want           string
	}{
		{pairsCross, 8, 1, "two addresses"},
		{pairsCross, 7, 2, "even"},
		{pairsLocal, 10, 3, "multiple of 6"},
		{pairsHalf, 200, 3, "multiple of 12"},
		{"ring", 8, 2, "unknown"},
	} {
		if _, err := partners(tc.mode, tc.clients, tc.addrs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s, %d clients, %d addresses: error %v, want one saying %q", tc.mode, tc.clients, tc.addrs, err, tc.want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPairsAddresses runs chat against two separate servers, which do not
// route to each other: client i must sign in to address i mod 2, so that
// with -pairs local every message is delivered and with -pairs cross none
// is (the partner is offline on the sender's server).
func TestPairsAddresses(t *testing.T) {
	a, b := testenv.Start(t, "sqlite"), testenv.Start(t, "sqlite")
	users(t, a, 8)
	users(t, b, 8)
	common := []string{"-addr", a.C2S + "," + b.C2S, "-domain", testenv.Domain, "-clients", "8", "-concurrency", "4",
		"-scenario", "chat", "-rates", "200", "-step", "300ms", "-drain", "1s"}
	// Both servers are this process: -cpu-pids gives its CPU per step.
	res := bench(t, 0, append(common, "-pairs", "local", "-cpu-pids", strconv.Itoa(os.Getpid()), "-db-comm", "no-such-command")...)[0]
	st := res["steps"].([]any)[0].(map[string]any)
	for _, k := range []string{"server_cpu_seconds", "server_cpu_us_per_msg", "db_cpu_seconds", "load_cpu_seconds"} {
		if v, ok := st[k].(float64); !ok || v < 0 {
			t.Errorf("local with -cpu-pids: %s is %v", k, st[k])
		}
	}
	if st["db_cpu_seconds"] != 0.0 {
		t.Errorf("no process is named no-such-command, yet db_cpu_seconds is %v", st["db_cpu_seconds"])
	}
	if res["addresses"] != 2.0 || res["pairs"] != "local" || res["paired_clients"] != 8.0 {
		t.Errorf("local: %v", res)
	}
	if sent := st["sent"].(float64); sent < 20 || st["delivered"] != sent || st["loss"] != 0.0 {
		t.Errorf("local: every message should be delivered on its server: %v", st)
	}
	// Loss past 5% is a failed run only in the table; xmppbench exits 0.
	res = bench(t, 0, append(common, "-pairs", "cross")...)[0]
	st = res["steps"].([]any)[0].(map[string]any)
	if _, ok := st["server_cpu_seconds"]; ok {
		t.Errorf("cross without -cpu-pids reports CPU: %v", st)
	}
	if sent := st["sent"].(float64); sent < 20 || st["delivered"] != 0.0 {
		t.Errorf("cross: no message should reach a partner on the other server: %v", st)
	}
}

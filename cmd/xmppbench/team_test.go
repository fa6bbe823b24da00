package main

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
)

// teamServer starts xmppd with users bench1..benchN of which the first
// members are in the team "team-bench".
func teamServer(t *testing.T, users, members int) *testenv.Server {
	t.Helper()
	s := testenv.Start(t, "sqlite")
	ctx := context.Background()
	if err := s.Store.CreateGroup(ctx, storage.Group{ID: "team-bench", Kind: storage.KindTeam, Name: "Bench"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= users; i++ {
		j := s.AddUser(t, "bench"+strconv.Itoa(i), "benchpass")
		if i <= members {
			if err := s.Store.AddMember(ctx, "team-bench", j.String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestTeam: 20 members of one team sign in, 5 at a time and then 40 a
// second; each gets the 19 others in its roster and sees all of them come
// online.
func TestTeam(t *testing.T) {
	s := teamServer(t, 20, 20)
	common := []string{"-addr", s.C2S, "-domain", testenv.Domain, "-clients", "20", "-scenario", "team",
		"-pid", strconv.Itoa(os.Getpid()), "-settle", "10ms", "-settle-timeout", "20s", "-server", "test"}
	for _, pace := range [][]string{{"-concurrency", "5"}, {"-rate", "40"}} {
		r := bench(t, 0, append(common, pace...)...)[0]
		if r["scenario"] != "team" || r["server"] != "test" || r["ok"] != 20.0 || r["failed"] != 0.0 {
			t.Errorf("%v: logins: %v", pace, r)
		}
		if r["roster_items_min"] != 19.0 || r["roster_items_max"] != 19.0 {
			t.Errorf("%v: every roster should hold the 19 others: %v", pace, r)
		}
		if r["settled"] != true || r["pairs_seen"] != 380.0 || r["pairs_wanted"] != 380.0 || r["settle_seconds"].(float64) <= 0 {
			t.Errorf("%v: every member should see the 19 others' presence: %v", pace, r)
		}
		if r["server_cpu_seconds"].(float64) < 0 || r["rss_after_kib"].(float64) <= 0 || r["dropped_clients"] != 0.0 {
			t.Errorf("%v: %v", pace, r)
		}
		if pace[0] == "-rate" {
			// 20 logins, one every 25 ms: the last starts after 475 ms.
			if r["rate_per_s"] != 40.0 || r["login_seconds"].(float64) < 0.45 {
				t.Errorf("-rate 40: %v", r)
			}
		} else if r["concurrency"] != 5.0 {
			t.Errorf("-concurrency 5: %v", r)
		}
	}
}

// TestTeamNotSettled: one of the 20 clients is not in the team, so nobody
// sees it and it sees nobody; the run says how far it got and fails.
func TestTeamNotSettled(t *testing.T) {
	s := teamServer(t, 20, 19)
	r := bench(t, 1, "-addr", s.C2S, "-domain", testenv.Domain, "-clients", "20", "-scenario", "team",
		"-pid", strconv.Itoa(os.Getpid()), "-settle", "10ms", "-settle-timeout", "1s")[0]
	if r["settled"] != false || r["settle_seconds"] != nil || r["pairs_seen"] != 342.0 || r["pairs_wanted"] != 380.0 {
		t.Errorf("19 members of 20 clients should see 19×18 pairs: %v", r)
	}
	if r["roster_items_min"] != 0.0 || r["roster_items_max"] != 18.0 {
		t.Errorf("rosters: %v", r)
	}
}

// TestTeamPresence: what counts as another member coming online.
func TestTeamPresence(t *testing.T) {
	cfg := &config{userPattern: "bench%d", first: 1, domain: "localhost"}
	tm := &team{cfg: cfg, index: map[string]int{}, want: 2, settled: make(chan struct{})}
	for i := range 3 {
		tm.index[cfg.user(i)+"@"+cfg.domain] = i
		tm.members = append(tm.members, &member{i: i, seen: make([]uint64, 1)})
	}
	m := tm.members[0]
	for _, tc := range []struct {
		el    string
		pairs int64
	}{
		{`<presence from='bench1@localhost/bench' to='bench1@localhost/bench'/>`, 0}, // our own
		{`<presence to='bench1@localhost/bench' from="bench2@localhost/bench"><priority>1</priority></presence>`, 1},
		{`<presence from='bench2@localhost/other'/>`, 1}, // seen already
		{`<presence xml:type='x' type='unavailable' from='bench3@localhost/bench'/>`, 1},
		{`<presence from='bench3@localhost' type='error'/>`, 1},
		{`<presence from='bench9@localhost/bench'/>`, 1}, // not a member
		{`<presence from='xbench3@localhost/bench'/>`, 1},
		{`<presence type='available' from='bench3@localhost/bench'/>`, 2},
	} {
		tm.presence(m, []byte(tc.el))
		if got := tm.pairs.Load(); got != tc.pairs {
			t.Errorf("after %s: %d pairs, want %d", tc.el, got, tc.pairs)
		}
	}
	select {
	case <-tm.settled:
	default:
		t.Error("two pairs of two wanted: not settled")
	}
	if got, err := parseStatCPU([]byte("42 (a) b) S 1 2 3 4 5 6 7 8 9 10 250 50 1 1 20 0")); err != nil || got != 3 {
		t.Errorf("parseStatCPU: %v, %v; want 3 s", got, err)
	}
}

package mam_test

import (
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/modules/mam"
)

// TestIDsIncrease: ids of one generator strictly increase in byte order,
// within a millisecond, across milliseconds, when the clock steps back and
// past the counter's end; they have one length and give back their time.
func TestIDsIncrease(t *testing.T) {
	g := mam.NewIDs()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	times := []time.Time{base}
	for range 70000 { // more than the 65,536 a millisecond holds
		times = append(times, base)
	}
	times = append(times, base.Add(-time.Hour), base.Add(time.Second), base.Add(time.Second+time.Millisecond))
	prev := ""
	for i, now := range times {
		id := g.Next(now)
		if len(id) != mam.IDLen {
			t.Fatalf("id %q has length %d, want %d", id, len(id), mam.IDLen)
		}
		if id <= prev {
			t.Fatalf("id %d %q is not after %q", i, id, prev)
		}
		prev = id
	}
	id := g.Next(base.Add(time.Minute))
	if got, ok := mam.IDTime(id); !ok || !got.Equal(base.Add(time.Minute)) {
		t.Errorf("IDTime(%q) = %v, %v; want %v", id, got, ok, base.Add(time.Minute))
	}
	if _, ok := mam.IDTime("not-an-id"); ok {
		t.Error("IDTime accepted a string that is no id")
	}
}

// TestIDsUnique: two generators (two nodes, or one node before and after a
// restart) never make the same id at the same moment, and one generator
// used from many goroutines makes each id once.
func TestIDsUnique(t *testing.T) {
	a, b := mam.NewIDs(), mam.NewIDs()
	now := time.Now()
	if a.Next(now) == b.Next(now) {
		t.Fatal("two generators made the same id")
	}
	var (
		mu   sync.Mutex
		seen = make(map[string]bool)
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, 0, 2000)
			for range 2000 {
				ids = append(ids, a.Next(time.Now()))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("id %q made twice", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if len(seen) != 16000 {
		t.Errorf("%d distinct ids, want 16000", len(seen))
	}
}

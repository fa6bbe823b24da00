package register

import (
	"testing"
	"time"
)

// TestCreationsWindow: an address gets max creations per window, counted
// from each one; a released reservation does not count; no limit when max
// is negative.
func TestCreationsWindow(t *testing.T) {
	var c creations
	t0 := time.Unix(1_000_000, 0)
	const w = time.Hour
	steps := []struct {
		addr string
		at   time.Duration
		max  int
		want bool
	}{
		{"a", 0, 2, true},
		{"a", time.Minute, 2, true},
		{"a", 2 * time.Minute, 2, false}, // two within the hour
		{"b", 2 * time.Minute, 2, true},  // another address
		{"a", w, 2, true},                // the first left the window
		{"a", w + time.Second, 2, false}, // the second is still in it
		{"c", 0, -1, true},
		{"c", 0, -1, true},
	}
	for i, s := range steps {
		if got := c.reserve(s.addr, t0.Add(s.at), s.max, w); got != s.want {
			t.Fatalf("step %d: reserve(%s, +%v) = %v, want %v", i, s.addr, s.at, got, s.want)
		}
	}
	// A failed creation gives its reservation back.
	at := t0.Add(3 * w)
	if !c.reserve("d", at, 1, w) {
		t.Fatal("first reservation of d refused")
	}
	c.release("d", at)
	if !c.reserve("d", at, 1, w) {
		t.Fatal("reservation of d after a release refused")
	}
	if c.reserve("d", at, 1, w) {
		t.Fatal("second reservation of d within its window granted")
	}
}

package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram counts latencies in microseconds, exactly below 64 µs and within
// 1/32 (3%) above, without locks: the readers of every client record into it
// at once.
type histogram struct {
	counts [1024]atomic.Uint64
	max    atomic.Int64
	n      atomic.Uint64
}

const subBits = 5 // 32 buckets per power of two

func bucket(us uint64) int {
	if us < 64 {
		return int(us)
	}
	e := bits.Len64(us) - subBits - 1 // us>>e is in [32, 63]
	i := 64 + (e-1)<<subBits + int(us>>uint(e)) - 32
	if i >= 1024 {
		return 1023
	}
	return i
}

// lower is the smallest value that falls into bucket i.
func lower(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := (i-64)>>subBits + 1
	return uint64(32+(i-64)&31) << uint(e)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	us := uint64(d / time.Microsecond)
	h.counts[bucket(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// quantile returns the value below which a fraction q of the samples fall,
// as the middle of its bucket.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := lower(i), lower(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load())
}

// latency is the JSON form of a histogram, in milliseconds.
type latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (h *histogram) summary() latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latency{P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), Max: ms(time.Duration(h.max.Load()))}
}

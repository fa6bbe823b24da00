package xmpp

import (
	"sync"
	"time"
)

// failureTracker counts failed authentications per key (an address, or an
// account), within a window that starts at the first failure.
type failureTracker struct {
	mu    sync.Mutex
	byKey map[string]*failureRecord
	// sweep is when expired records were last dropped: keys that fail once
	// and never come back must not accumulate.
	sweep time.Time
}

type failureRecord struct {
	count int
	first time.Time
}

// blocked reports whether key has used up its failures in the window; a
// negative max never blocks.
func (t *failureTracker) blocked(key string, max int, window time.Duration) bool {
	if max < 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.byKey[key]
	if r == nil {
		return false
	}
	if time.Since(r.first) > window {
		delete(t.byKey, key)
		return false
	}
	return r.count >= max
}

// record counts a failure and returns how many there were in the window.
func (t *failureTracker) record(key string, window time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.byKey == nil {
		t.byKey = make(map[string]*failureRecord)
	}
	if now.Sub(t.sweep) > window {
		t.sweep = now
		for k, r := range t.byKey {
			if now.Sub(r.first) > window {
				delete(t.byKey, k)
			}
		}
	}
	r := t.byKey[key]
	if r == nil || now.Sub(r.first) > window {
		r = &failureRecord{first: now}
		t.byKey[key] = r
	}
	r.count++
	return r.count
}

// knownAddrs remembers, per account, the last few addresses it signed in
// from. When guesses from many addresses have locked an account
// (MaxAccountAuthFailures), its owner can still sign in from one of these;
// only new addresses wait for the window to pass. Kept in memory: after a
// restart an attacked account is locked for new and old addresses alike
// until the window passes.
type knownAddrs struct {
	mu     sync.Mutex
	byUser map[string][]string
}

// knownAddrsPerAccount is how many addresses an account keeps.
const knownAddrsPerAccount = 4

func (k *knownAddrs) add(bare, addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byUser == nil {
		k.byUser = make(map[string][]string)
	}
	list := k.byUser[bare]
	for i, a := range list {
		if a == addr {
			// Most recent first.
			copy(list[1:i+1], list[:i])
			list[0] = addr
			return
		}
	}
	if len(list) < knownAddrsPerAccount {
		list = append(list, "")
	}
	copy(list[1:], list)
	list[0] = addr
	k.byUser[bare] = list
}

func (k *knownAddrs) has(bare, addr string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range k.byUser[bare] {
		if a == addr {
			return true
		}
	}
	return false
}

// accountLocked reports whether attempts on the account bare from addr are
// refused without checking the password: guesses from anywhere used up its
// failures in the window, and addr is not one its owner signed in from.
func (s *Server) accountLocked(bare, addr string) bool {
	set := s.cur()
	return s.accountFailures.blocked(bare, set.MaxAccountAuthFailures, set.AuthFailureWindow) && !s.knownAddrs.has(bare, addr)
}

package roster

import (
	"hash/maphash"
	"maps"
	"slices"
	"sync"
)

// In a team of n, each member's co-members are the n-1 others: kept per
// account, they cost n² entries for the team (about 250 bytes each with the
// garbage collector's headroom: 290 KiB per session in a team of 1,000).
// Accounts that belong to the same groups see the same people, so they
// share one coSet: every member, themselves included, with the names of
// the groups shared; an account's co-members are its set without itself.
// A change of one member's groups changes one entry of each set, not one
// entry of each account.

// A coSet is the co-members that the accounts in owners share.
type coSet struct {
	all    map[string][]string // every member, the owners included → shared group names
	owners map[string]bool     // accounts online here that use the set
	key    uint64              // hash of all, its place in coSets.byKey
}

// get returns the groups owner shares with contact (nil for itself).
func (s *coSet) get(owner, contact string) []string {
	if contact == owner {
		return nil
	}
	return s.all[contact]
}

// view returns owner's co-members as a map of its own.
func (s *coSet) view(owner string) map[string][]string {
	v := maps.Clone(s.all)
	delete(v, owner)
	return v
}

// coSets interns the sets; mu guards every set and every account's co.
type coSets struct {
	mu    sync.RWMutex
	seed  maphash.Seed
	byKey map[uint64][]*coSet
}

// hash is order-independent: the sum of the entries' hashes.
func (c *coSets) hash(all map[string][]string) uint64 {
	var sum uint64
	for k, groups := range all {
		var h maphash.Hash
		h.SetSeed(c.seed)
		h.WriteString(k)
		for _, g := range groups {
			h.WriteByte(0)
			h.WriteString(g)
		}
		sum += h.Sum64()
	}
	return sum
}

// attach gives owner the set of all (its co-members, shared, plus itself),
// an existing one when another account has the same. Called with mu held.
func (c *coSets) attach(owner string, shared map[string][]string) *coSet {
	if c.byKey == nil {
		c.seed = maphash.MakeSeed()
		c.byKey = make(map[uint64][]*coSet)
	}
	all := make(map[string][]string, len(shared)+1)
	var self []string
	for k, groups := range shared {
		all[k] = groups
		self = append(self, groups...)
	}
	if len(self) > 0 {
		slices.Sort(self)
		all[owner] = slices.Compact(self)
	}
	key := c.hash(all)
	for _, s := range c.byKey[key] {
		if maps.EqualFunc(s.all, all, slices.Equal) {
			s.owners[owner] = true
			return s
		}
	}
	s := &coSet{all: all, owners: map[string]bool{owner: true}, key: key}
	c.byKey[key] = append(c.byKey[key], s)
	return s
}

// detach takes owner off s, and s out when nobody uses it. Called with mu
// held.
func (c *coSets) detach(s *coSet, owner string) {
	delete(s.owners, owner)
	if len(s.owners) == 0 {
		c.unindex(s)
	}
}

func (c *coSets) unindex(s *coSet) {
	list := c.byKey[s.key]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(c.byKey, s.key)
	} else {
		c.byKey[s.key] = list
	}
}

// fork moves owners from s to a copy of it, which a change to s then
// leaves alone. Called with mu held.
func (c *coSets) fork(s *coSet, owners []string) *coSet {
	f := &coSet{all: maps.Clone(s.all), owners: make(map[string]bool, len(owners)), key: s.key}
	for _, o := range owners {
		delete(s.owners, o)
		f.owners[o] = true
	}
	c.byKey[f.key] = append(c.byKey[f.key], f)
	if len(s.owners) == 0 {
		c.unindex(s)
	}
	return f
}

// set changes contact's entry of s (nil groups: none) and files s under
// its new hash. Called with mu held.
func (c *coSets) set(s *coSet, contact string, groups []string) {
	c.unindex(s)
	if groups == nil {
		delete(s.all, contact)
	} else {
		s.all[contact] = groups
	}
	s.key = c.hash(s.all)
	c.byKey[s.key] = append(c.byKey[s.key], s)
}

// sets returns every set. Called with mu held.
func (c *coSets) sets() []*coSet {
	var out []*coSet
	for _, list := range c.byKey {
		out = append(out, list...)
	}
	return out
}

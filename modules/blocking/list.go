package blocking

import (
	"slices"
	"strings"

	"mellium.im/xmpp/jid"
)

// A list is an account's block list as the hooks read it: a set of
// normalised JIDs, never changed once published (a change makes a new one).
type list map[string]struct{}

func newList(items []string) list {
	l := make(list, len(items))
	for _, j := range items {
		l[j] = struct{}{}
	}
	return l
}

// matches reports whether j is blocked by an item (XEP-0191 §4, XEP-0016
// §2.1): the full JID itself, its bare JID, or its domain. A
// domain/resource item is matched by the full JID of a JID without a
// localpart, which is that same string.
func (l list) matches(j jid.JID) bool {
	if len(l) == 0 {
		return false
	}
	if _, ok := l[j.String()]; ok {
		return true
	}
	if j.Resourcepart() != "" {
		if _, ok := l[j.Bare().String()]; ok {
			return true
		}
	}
	_, ok := l[j.Domainpart()]
	return ok
}

// with returns a copy of l with items added; without, with items removed.
func (l list) with(items []string) list {
	n := make(list, len(l)+len(items))
	for j := range l {
		n[j] = struct{}{}
	}
	for _, j := range items {
		n[j] = struct{}{}
	}
	return n
}

func (l list) without(items []string) list {
	n := make(list, len(l))
	for j := range l {
		n[j] = struct{}{}
	}
	for _, j := range items {
		delete(n, j)
	}
	return n
}

func (l list) sorted() []string {
	out := make([]string, 0, len(l))
	for j := range l {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}

// bareOf returns the bare JID of a JID as the server stamps it, without
// parsing: what precedes the resource.
func bareOf(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

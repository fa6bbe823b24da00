package rsm

import (
	"errors"
	"strconv"
	"strings"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the Result Set Management namespace (XEP-0059 §2).
const NS = "http://jabber.org/protocol/rsm"

// A Request is what a requester asks of a result set (XEP-0059 §2.1-§2.5).
type Request struct {
	// Max is the most items wanted; HasMax is false when <max/> was
	// absent (the responder chooses).
	Max    int
	HasMax bool
	// After asks for the page after the item with this id (§2.2).
	After    string
	HasAfter bool
	// Before asks for the page before the item with this id (§2.3), or,
	// when HasBefore and Before is "", the last page (§2.5).
	Before    string
	HasBefore bool
	// Index asks for the page starting at this position (§2.6); -1 when
	// there is no <index/>.
	Index int
}

// Last reports whether the request pages backwards: <before/>, empty or
// not.
func (r Request) Last() bool { return r.HasBefore }

// ErrBadRequest is returned by Parse for a <set/> whose max or index is
// not a non-negative integer: the answer is <bad-request/>.
var ErrBadRequest = errors.New("rsm: bad <set/>")

// Parse reads a <set/> request. A nil set is no request: ok is false.
func Parse(set *xmpp.Element) (req Request, ok bool, err error) {
	req.Index = -1
	if set == nil || set.Space != NS || set.Local != "set" {
		return req, false, nil
	}
	for _, c := range set.Elements() {
		if c.Space != NS {
			continue
		}
		v := strings.TrimSpace(c.Text())
		switch c.Local {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return req, true, ErrBadRequest
			}
			req.Max, req.HasMax = n, true
		case "after":
			req.After, req.HasAfter = v, true
		case "before":
			req.Before, req.HasBefore = v, true
		case "index":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return req, true, ErrBadRequest
			}
			req.Index = n
		}
	}
	return req, true, nil
}

// A Result describes the page answered (XEP-0059 §2.1): the ids of its
// first and last items, the first's position in the whole set when known,
// and the size of the set when known.
type Result struct {
	First, Last string
	// Index is the position of First in the set; -1 leaves it out.
	Index int
	// Count is the number of items in the set; -1 leaves it out.
	Count int
}

// Element writes the <set/> of a response. An empty page has no <first/>
// or <last/> (§2.6); an empty page with no count is an empty <set/>.
func (r Result) Element() *xmpp.Element {
	set := xmpp.NewElement(NS, "set")
	if r.First != "" {
		first := xmpp.NewElement(NS, "first")
		if r.Index >= 0 {
			first.Set("index", strconv.Itoa(r.Index))
		}
		set.Add(first.Add(xmpp.Text(r.First)))
	}
	if r.Last != "" {
		set.Add(xmpp.NewElement(NS, "last").Add(xmpp.Text(r.Last)))
	}
	if r.Count >= 0 {
		set.Add(xmpp.NewElement(NS, "count").Add(xmpp.Text(strconv.Itoa(r.Count))))
	}
	return set
}

// Page cuts a page out of n items sorted by key, as req asks: after and
// before are keys (items need not exist), index a position. It returns the
// half-open range [start, end) of the page. limit is the page size when
// the request has no max.
func Page(n int, key func(i int) string, req Request, limit int) (start, end int) {
	if req.HasMax {
		limit = req.Max
	}
	start, end = 0, n
	search := func(pred func(i int) bool) int {
		lo, hi := 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if !pred(m) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo
	}
	if req.HasAfter {
		start = search(func(i int) bool { return key(i) > req.After })
	}
	switch {
	case req.HasBefore:
		if req.Before != "" {
			end = search(func(i int) bool { return key(i) >= req.Before })
		}
		start = max(start, end-limit)
	case req.Index >= 0:
		start = min(req.Index, n)
	}
	end = max(start, min(end, start+limit))
	return start, end
}

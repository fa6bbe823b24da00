package pep

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Namespaces of entity capabilities (XEP-0115) and service discovery.
const (
	NSCaps      = "http://jabber.org/protocol/caps"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// notifySuffix marks a feature that asks for a node's notifications
// (XEP-0163 §4.4).
const notifySuffix = "+notify"

// capsKey names a capabilities set: the hash function and the
// verification string's hash, as presence gives them.
type capsKey struct{ hash, ver string }

// An interest is the nodes one entity wants notifications of, from the
// features of its capabilities; shared by every entity with the same
// capabilities.
type interest map[string]bool

// capsCache holds the interests of capabilities sets seen, verified
// (XEP-0115 §5.4), shared by all accounts: each client version is asked
// once per server run, not once per account or session.
type capsCache struct {
	mu      sync.Mutex
	known   map[capsKey]interest
	pending map[capsKey][]func(interest)
}

// maxCaps bounds the capabilities sets kept; past it, one is let go.
const maxCaps = 10_000

// maxPending bounds the capabilities sets being asked for at once.
const maxPending = 1000

// capsTimeout bounds the wait for an entity's disco#info answer.
const capsTimeout = 30 * time.Second

// hashes are the hash functions of XEP-0115 §5.1 this service verifies
// (IANA names).
var hashes = map[string]func() hash.Hash{
	"sha-1": sha1.New, "sha-256": sha256.New, "sha-512": sha512.New,
}

// capsOf returns the capabilities a presence announces; false when it
// announces none this service can verify (legacy capabilities without a
// hash included).
func capsOf(p *xmpp.Element) (k capsKey, node string, ok bool) {
	c := p.Child(NSCaps, "c")
	if c == nil {
		return capsKey{}, "", false
	}
	k = capsKey{hash: c.Get("hash"), ver: c.Get("ver")}
	if _, known := hashes[k.hash]; !known || k.ver == "" {
		return capsKey{}, "", false
	}
	return k, c.Get("node"), true
}

// lookup returns the interest of k when it is known.
func (c *capsCache) lookup(k capsKey) (interest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.known[k]
	return in, ok
}

// resolve calls done with the interest of k, asking full (an entity that
// announced k, with node) for its features when k is not known yet; done
// runs once the answer came and was verified, never when it did not.
func (m *Module) resolve(k capsKey, node, full string, done func(interest)) {
	c := &m.caps
	c.mu.Lock()
	if in, ok := c.known[k]; ok {
		c.mu.Unlock()
		done(in)
		return
	}
	if c.pending == nil {
		c.pending = make(map[capsKey][]func(interest))
	}
	waiting := c.pending[k]
	if waiting == nil && len(c.pending) >= maxPending {
		// Many unknown sets at once (a contact's client announcing a new
		// one in every presence): the rest wait for a later presence.
		c.mu.Unlock()
		return
	}
	c.pending[k] = append(waiting, done)
	c.mu.Unlock()
	if waiting != nil {
		return // someone asks already
	}
	m.srv.Go(func(ctx context.Context) {
		in, ok := m.ask(ctx, k, node, full)
		c.mu.Lock()
		waiters := c.pending[k]
		delete(c.pending, k)
		if ok {
			if c.known == nil {
				c.known = make(map[capsKey]interest)
			}
			if len(c.known) >= maxCaps {
				for old := range c.known {
					delete(c.known, old)
					break
				}
			}
			c.known[k] = in
		}
		c.mu.Unlock()
		if !ok {
			return
		}
		for _, w := range waiters {
			w(in)
		}
	})
}

// ask sends full a disco#info request for node#ver and returns the
// interest of the answer, if its features hash to ver (XEP-0115 §5.4).
func (m *Module) ask(ctx context.Context, k capsKey, node, full string) (interest, bool) {
	ctx, cancel := context.WithTimeout(ctx, capsTimeout)
	defer cancel()
	q := xmpp.NewElement(nsDiscoInfo, "query")
	if node != "" {
		q.Set("node", node+"#"+k.ver)
	}
	iq := xmpp.NewElement(xmpp.NSClient, "iq", "type", "get", "from", m.srv.Domain, "to", full).Add(q)
	res, err := m.srv.Router().Request(ctx, iq)
	if err != nil || res.Get("type") != "result" {
		return nil, false
	}
	info := res.Child(nsDiscoInfo, "query")
	if info == nil || verification(info, hashes[k.hash]) != k.ver {
		return nil, false
	}
	in := interest{}
	for _, f := range info.Elements() {
		if f.Space == nsDiscoInfo && f.Local == "feature" {
			if n, ok := strings.CutSuffix(f.Get("var"), notifySuffix); ok && n != "" {
				in[n] = true
			}
		}
	}
	return in, true
}

// verification computes the hash of a disco#info answer's verification
// string (XEP-0115 §5.1), base64-encoded.
func verification(info *xmpp.Element, newHash func() hash.Hash) string {
	var ids, feats []string
	var forms []*form.Form
	for _, e := range info.Elements() {
		switch {
		case e.Space == nsDiscoInfo && e.Local == "identity":
			ids = append(ids, e.Get("category")+"/"+e.Get("type")+"/"+lang(e)+"/"+e.Get("name"))
		case e.Space == nsDiscoInfo && e.Local == "feature":
			feats = append(feats, e.Get("var"))
		case e.Space == form.NS && e.Local == "x":
			if fm, err := form.Parse(e); err == nil && fm.FormType != "" {
				forms = append(forms, fm)
			}
		}
	}
	slices.Sort(ids)
	slices.Sort(feats)
	var s strings.Builder
	for _, l := range [][]string{ids, feats} {
		for _, v := range l {
			s.WriteString(v)
			s.WriteByte('<')
		}
	}
	slices.SortFunc(forms, func(a, b *form.Form) int { return strings.Compare(a.FormType, b.FormType) })
	for _, fm := range forms {
		s.WriteString(fm.FormType)
		s.WriteByte('<')
		fields := slices.Clone(fm.Fields)
		slices.SortFunc(fields, func(a, b form.Field) int { return strings.Compare(a.Var, b.Var) })
		for _, f := range fields {
			s.WriteString(f.Var)
			s.WriteByte('<')
			vals := slices.Clone(f.Values)
			slices.Sort(vals)
			for _, v := range vals {
				s.WriteString(v)
				s.WriteByte('<')
			}
		}
	}
	h := newHash()
	h.Write([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// lang is e's xml:lang.
func lang(e *xmpp.Element) string {
	for _, a := range e.Attr {
		if a.Space == xmpp.NSXML && a.Local == "lang" {
			return a.Value
		}
	}
	return ""
}

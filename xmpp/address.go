package xmpp

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
)

var (
	errEmptyLabel     = errors.New("xmpp: the domainpart has an empty label")
	errUnstableDomain = errors.New("xmpp: the domainpart's canonical form is not a valid domain")
)

// ParseAddress parses a JID from the wire (RFC 7622): jid.Parse, and a
// domainpart with no empty label. jid.Parse takes ".." for the domain "."
// (it drops one final dot, RFC 7622 §3.2), which is no host and does not
// parse again once written out; the router would look it up as a remote
// domain. Found by FuzzJID.
//
// A non-ASCII domainpart must also be valid in the form it is mapped to:
// "ℶA" maps to "בa" (NFKC, then lower case), which the IDNA bidi rule
// refuses (RFC 5893), so the address would be one that cannot be written
// back and read again. Also found by FuzzJID.
func ParseAddress(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	d := j.Domainpart()
	if !strings.HasPrefix(d, "[") && (strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..")) {
		return jid.JID{}, errEmptyLabel
	}
	if !isASCII(d) {
		// A copy, so that d does not escape: on the usual (ASCII) path
		// it stays on the stack (the router parses every address).
		if _, err := jid.Parse(strings.Clone(d)); err != nil {
			return jid.JID{}, errUnstableDomain
		}
	}
	return j, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

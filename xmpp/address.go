package xmpp

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
)

var errEmptyLabel = errors.New("xmpp: the domainpart has an empty label")

// ParseAddress parses a JID from the wire (RFC 7622): jid.Parse, and a
// domainpart with no empty label. jid.Parse takes ".." for the domain "."
// (it drops one final dot, RFC 7622 §3.2), which is no host and does not
// parse again once written out; the router would look it up as a remote
// domain. Found by FuzzJID.
func ParseAddress(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	d := j.Domainpart()
	if !strings.HasPrefix(d, "[") && (strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..")) {
		return jid.JID{}, errEmptyLabel
	}
	return j, nil
}

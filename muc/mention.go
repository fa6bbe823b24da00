package muc

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// A MentionFunc learns that a groupchat message from from (the sender's
// occupant JID) mentions member, an account of this server affiliated
// with the room who is not in it. Push notifications (XEP-0357) use it to
// wake the member's client. It runs on the room's goroutine, so it must
// not block.
type MentionFunc func(ctx context.Context, member, from jid.JID, body string)

// mentions tells Service.Mentions of the members a groupchat message
// mentions: members, admins and owners of the room on this server, not in
// the room, whose reserved nick or username the body names as a word.
// It costs one pass over the affiliations per message with a body, and
// nothing when no MentionFunc is set.
func (r *room) mentions(ctx context.Context, body, from string) {
	if r.svc.Mentions == nil || body == "" {
		return
	}
	var present map[string]bool
	for _, a := range r.affs {
		switch a.Affiliation {
		case storage.AffMember, storage.AffAdmin, storage.AffOwner:
		default:
			continue
		}
		j, err := jid.Parse(a.JID)
		if err != nil || j.Localpart() == "" || j.Domainpart() != r.svc.srv.Domain {
			continue
		}
		if !(a.Nick != "" && mentioned(body, a.Nick)) && !mentioned(body, j.Localpart()) {
			continue
		}
		if present == nil {
			present = make(map[string]bool, len(r.byNick))
			for _, o := range r.byNick {
				present[o.bare] = true
			}
		}
		if present[a.JID] {
			continue // in the room: the message reached them
		}
		r.svc.Mentions(ctx, j, jid.MustParse(from), body)
	}
}

// mentioned reports whether body names name as a word: case-insensitively,
// with no letter or digit just before or after it ("@bob," mentions bob;
// "bobby" does not).
func mentioned(body, name string) bool {
	lb, ln := strings.ToLower(body), strings.ToLower(name)
	for i := 0; i <= len(lb)-len(ln); {
		k := strings.Index(lb[i:], ln)
		if k < 0 {
			return false
		}
		start, end := i+k, i+k+len(ln)
		before, _ := utf8.DecodeLastRuneInString(lb[:start])
		after, _ := utf8.DecodeRuneInString(lb[end:])
		if (start == 0 || !wordRune(before)) && (end == len(lb) || !wordRune(after)) {
			return true
		}
		i = start + 1
	}
	return false
}

func wordRune(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }

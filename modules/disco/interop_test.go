package disco_test

import (
	"slices"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/disco"
)

// TestSlixContactAddresses: slixmpp's XEP-0030 plugin, a third-party
// client, reads the server's disco#info and finds the contact addresses in
// its serverinfo form (XEP-0157, XEP-0128) as configured.
func TestSlixContactAddresses(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := startAll(t, backend, contacts)
		d := s.StartDriver(t, s.AddUser(t, "alice", "pw"), "pw", "slix")
		d.Do(t, map[string]any{"cmd": "disco_info", "jid": testenv.Domain})
		ev := d.Answer(t)
		if ev.Event != "disco_info" {
			t.Fatalf("disco_info: %+v", ev)
		}
		if !slices.Contains(ev.Identities, "server/im") || !slices.Contains(ev.Features, disco.NSInfo) {
			t.Errorf("server's identities %q, features %q", ev.Identities, ev.Features)
		}
		got := ev.Forms[disco.NSServerInfo]
		want := map[string][]string{
			"abuse-addresses":    contacts.Abuse,
			"admin-addresses":    contacts.Admin,
			"feedback-addresses": contacts.Feedback,
			"support-addresses":  contacts.Support,
		}
		if len(got) != len(want) {
			t.Fatalf("slixmpp read the serverinfo form as %q, want %q (all forms: %q)", got, want, ev.Forms)
		}
		for k, v := range want {
			if !slices.Equal(got[k], v) {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
	})
}

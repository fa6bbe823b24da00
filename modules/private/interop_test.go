package private_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixBookmarks: slixmpp, a third-party client, stores XEP-0048
// bookmarks in private storage with its XEP-0049 plugin and, on a second
// connection, reads them back as it stored them.
func TestSlixBookmarks(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj := s.AddUser(t, "alice", "pw")
		want := testenv.DriverConference{JID: "room@conference.localhost", Name: "The room", Nick: "al", Autojoin: true}

		d := s.StartDriver(t, aj, "pw", "one")
		d.Do(t, map[string]any{"cmd": "bookmarks_set", "conferences": []testenv.DriverConference{want}})
		if ev := d.Answer(t); ev.Event != "iq_result" {
			t.Fatalf("bookmarks_set: %+v", ev)
		}

		d2 := s.StartDriver(t, aj, "pw", "two")
		d2.Do(t, map[string]any{"cmd": "bookmarks_get"})
		ev := d2.Answer(t)
		if ev.Event != "bookmarks" || len(ev.Conferences) != 1 || ev.Conferences[0] != want {
			t.Fatalf("bookmarks read back: %+v, want [%+v]", ev, want)
		}
	})
}

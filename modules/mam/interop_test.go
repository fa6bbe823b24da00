package mam_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixmppMAM: slixmpp's XEP-0313 plugin, on a second device that
// signs in after the conversation, pages through an archive of 1,000
// messages forward and backward and gets each message exactly once, in
// order. A message that went to offline storage is delivered with a
// stanza-id, and the archive's newest message has that id: a client that
// asks the archive after receiving it sees no new message.
func TestSlixmppMAM(t *testing.T) {
	const n = 1000
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		tm := newTeam(t, backend)
		a := online(t, tm.s, tm.alice, "a")
		b := online(t, tm.s, tm.bob, "phone")
		var batch strings.Builder
		for i := range n {
			// Both sides of the conversation: bob answers every tenth.
			fmt.Fprintf(&batch, `<message type="chat" id="c%d" to="%s"><body>m%d</body></message>`, i, tm.bob, i)
			if i%10 == 9 {
				a.SendRaw(t, batch.String())
				batch.Reset()
				expectBody(t, b, fmt.Sprintf("m%d", i))
				chat(t, b, tm.alice, fmt.Sprintf("r%d", i))
				expectBody(t, a, fmt.Sprintf("r%d", i))
			}
		}
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("m%d", i))
			if i%10 == 9 {
				want = append(want, fmt.Sprintf("r%d", i))
			}
		}

		laptop := tm.s.StartDriver(t, tm.bob, "pw", "laptop", "--mam")
		check := func(name string, got []testenv.DriverArchived, want []string) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s: %d messages, want %d", name, len(got), len(want))
			}
			seen := make(map[string]bool)
			for i, r := range got {
				if r.Body != want[i] {
					t.Fatalf("%s: message %d is %q, want %q", name, i, r.Body, want[i])
				}
				if seen[r.ID] {
					t.Fatalf("%s: id %s twice", name, r.ID)
				}
				seen[r.ID] = true
			}
		}
		laptop.Do(t, map[string]any{"cmd": "mam", "id": "fwd", "max": 100})
		fwd := laptop.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "fwd" })
		check("forward", fwd.Results, want)
		for i := 1; i < len(fwd.Results); i++ {
			if fwd.Results[i].ID <= fwd.Results[i-1].ID {
				t.Fatalf("archive ids not increasing: %s then %s", fwd.Results[i-1].ID, fwd.Results[i].ID)
			}
		}
		var rev []string
		for i := len(want) - 1; i >= 0; i-- {
			rev = append(rev, want[i])
		}
		laptop.Do(t, map[string]any{"cmd": "mam", "id": "back", "max": 70, "reverse": true})
		check("backward", laptop.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "back" }).Results, rev)
		laptop.Do(t, map[string]any{"cmd": "mam", "id": "with", "max": 250, "with": tm.alice.String()})
		check("with alice", laptop.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "with" }).Results, want)

		// Offline: both of bob's devices go; alice writes; the laptop
		// comes back.
		laptop.Do(t, map[string]any{"cmd": "quit"})
		laptop.Wait(t)
		b.Close()
		waitGone(t, tm.s, tm.bob.String())
		chat(t, a, tm.bob, "while you were away")
		laptop = tm.s.StartDriver(t, tm.bob, "pw", "laptop", "--mam")
		laptop.Do(t, map[string]any{"cmd": "presence"})
		msg := laptop.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "while you were away" })
		if msg.Delay == "" {
			t.Fatalf("not delivered from offline storage: %s", msg.XML)
		}
		var sid string
		for _, s := range msg.StanzaIDs {
			if s.By == tm.bob.String() {
				if sid != "" {
					t.Fatalf("two stanza-ids by bob: %s", msg.XML)
				}
				sid = s.ID
			}
		}
		if sid == "" {
			t.Fatalf("offline message without bob's stanza-id: %s", msg.XML)
		}
		laptop.Do(t, map[string]any{"cmd": "mam", "id": "after", "max": 5, "reverse": true})
		got := laptop.Expect(t, "mam_results", func(ev testenv.DriverEvent) bool { return ev.ID == "after" }).Results
		if len(got) != len(want)+1 || got[0].Body != "while you were away" || got[0].ID != sid {
			t.Fatalf("newest archived message %+v, want the offline one with id %s, of %d", got[0], sid, len(want)+1)
		}
		for _, r := range got[1:] {
			if r.Body == "while you were away" {
				t.Fatalf("the offline message is twice in the archive")
			}
		}
	})
}

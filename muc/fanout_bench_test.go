package muc

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// BenchmarkGroupchatFanout sends one groupchat message to a room of 500
// occupants: the message is serialised once and addressed per occupant.
// Delivery is counted instead of written, so that the figure is the room's
// own cost; xmppbench's muc scenario measures the whole server.
func BenchmarkGroupchatFanout(b *testing.B) {
	const occupants = 500
	var delivered, size int
	svc := &Service{
		Domain: "conference.example.com",
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		rooms:  map[string]*room{},
		joined: map[string]map[*room]struct{}{},
		deliverTo: func(_ member, p []byte) bool {
			delivered++
			size += len(p)
			return true
		},
	}
	rj := jid.MustParse("bench@conference.example.com")
	r := newRoom(svc, rj)
	var sender jid.JID
	for i := range occupants {
		full := jid.MustParse(fmt.Sprintf("user%d@example.com/phone", i))
		o := &occupant{nick: fmt.Sprintf("user%d", i), bare: full.Bare().String(), sessions: []member{{jid: full, full: full.String()}}, role: roleParticipant}
		r.byNick[o.nick] = o
		r.byFull[full.String()] = o
		if i == 0 {
			sender = full
		}
	}
	msg, err := xmpp.ParseElement([]byte(`<message xmlns="jabber:client" type="groupchat" id="m1" to="bench@conference.example.com" from="user0@example.com/phone"><body>Are we still on for lunch &amp; a walk?</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		// As room.handle does: queued under the lock, delivered after.
		r.mu.Lock()
		r.message(msg, rj, sender)
		r.unlock()
	}
	if delivered != b.N*occupants {
		b.Fatalf("%d deliveries for %d messages to %d occupants", delivered, b.N, occupants)
	}
	b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(size)/float64(delivered), "bytes/delivery")
}

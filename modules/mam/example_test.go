package mam_test

import (
	"fmt"
	"time"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// A room archive reuses the account archive's pieces: ids, the query
// language, and the result messages and <fin/>.
func Example() {
	ids := mam.NewIDs()
	id := ids.Next(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	t, _ := mam.IDTime(id)
	fmt.Println(len(id), t)

	iq, _ := xmpp.ParseStanza([]byte(`<iq xmlns="jabber:client" type="set"><query xmlns="urn:xmpp:mam:2" queryid="q1">` +
		`<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before/></set></query></iq>`))
	q, err := mam.ParseQuery(iq.Elements()[0], mam.DefaultMaxPage)
	fmt.Println(q.ID, q.Archive.Max, q.Archive.Last, err)

	// The page would come from mam.Select(ctx, store, room, q).
	page := storage.ArchivePage{Complete: true, Messages: []storage.ArchivedMessage{{
		ID: id, Owner: "room@conference.example.org", Time: t,
		Data: []byte(`<message xmlns="jabber:client" type="groupchat" from="room@conference.example.org/ann"><body>hi</body></message>`),
	}}}
	res, _ := mam.ResultMessage("room@conference.example.org", "bob@example.org/phone", q.ID, page.Messages[0])
	fmt.Println(res.Child(mam.NS, "result").Get("queryid"))
	fmt.Println(mam.Fin(page).Get("complete"))
	// Output:
	// 20 2026-12-04 12:00:00 +0000 UTC
	// q1 10 true <nil>
	// q1
	// true
}

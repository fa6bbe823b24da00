package mam_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

func element(t *testing.T, s string) *xmpp.Element {
	t.Helper()
	el, err := xmpp.ParseStanza([]byte(s))
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return el
}

func queryEl(t *testing.T, inner string) *xmpp.Element {
	t.Helper()
	return element(t, `<iq xmlns="jabber:client" type="set"><query xmlns="urn:xmpp:mam:2" queryid="q1">`+inner+`</query></iq>`).Elements()[0]
}

func fields(fs string) string {
	return `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:mam:2</value></field>` + fs + `</x>`
}

func TestParseQuery(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, inner string
		want        mam.Query
		cond        xmpp.Condition
	}{
		{"empty", ``, mam.Query{ID: "q1", Archive: storage.ArchiveQuery{Max: mam.DefaultPage}}, ""},
		{"with is made bare", fields(`<field var="with"><value>bob@example.com/phone</value></field>`),
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{With: "bob@example.com", Max: mam.DefaultPage}}, ""},
		{"start and end", fields(`<field var="start"><value>2026-01-01T10:00:00Z</value></field><field var="end"><value>2026-01-01T11:00:00.5+01:00</value></field>`),
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{Start: start, End: start.Add(500 * time.Millisecond), Max: mam.DefaultPage}}, ""},
		{"ids", fields(`<field var="ids"><value>a</value><value>b</value></field>`),
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{IDs: []string{"a", "b"}, Max: mam.DefaultPage}}, ""},
		{"after-id and RSM after: the narrower", fields(`<field var="after-id"><value>b</value></field>`) + `<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><after>c</after></set>`,
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{AfterID: "c", Max: 10}}, ""},
		{"before-id and RSM before: the narrower", fields(`<field var="before-id"><value>b</value></field>`) + `<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before>c</before></set>`,
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{BeforeID: "b", Max: 10, Last: true}}, ""},
		{"last page", `<set xmlns="http://jabber.org/protocol/rsm"><max>5</max><before/></set><flip-page/>`,
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{Max: 5, Last: true}, Flip: true}, ""},
		{"max at the cap", `<set xmlns="http://jabber.org/protocol/rsm"><max>250</max></set>`,
			mam.Query{ID: "q1", Archive: storage.ArchiveQuery{Max: 250}}, ""},
		{"max past the cap", `<set xmlns="http://jabber.org/protocol/rsm"><max>251</max></set>`, mam.Query{}, xmpp.PolicyViolationCond},
		{"bad max", `<set xmlns="http://jabber.org/protocol/rsm"><max>x</max></set>`, mam.Query{}, xmpp.BadRequest},
		{"index", `<set xmlns="http://jabber.org/protocol/rsm"><index>3</index></set>`, mam.Query{}, xmpp.FeatureNotImplemented},
		{"unknown field", fields(`<field var="color"><value>red</value></field>`), mam.Query{}, xmpp.BadRequest},
		{"bad with", fields(`<field var="with"><value>@@</value></field>`), mam.Query{}, xmpp.BadRequest},
		{"bad start", fields(`<field var="start"><value>yesterday</value></field>`), mam.Query{}, xmpp.BadRequest},
		{"end before start", fields(`<field var="start"><value>2026-01-02T00:00:00Z</value></field><field var="end"><value>2026-01-01T00:00:00Z</value></field>`), mam.Query{}, xmpp.BadRequest},
		{"other FORM_TYPE", `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>urn:other</value></field></x>`, mam.Query{}, xmpp.BadRequest},
		{"empty ids", fields(`<field var="ids"/>`), mam.Query{}, xmpp.BadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := mam.ParseQuery(queryEl(t, c.inner), mam.DefaultMaxPage)
			if c.cond != "" {
				var se xmpp.StanzaError
				if !errors.As(err, &se) || se.Condition != c.cond {
					t.Fatalf("err = %v, want %s", err, c.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g, w := q.Archive, c.want.Archive
			if q.ID != c.want.ID || q.Flip != c.want.Flip || !slices.Equal(g.IDs, w.IDs) ||
				!g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.With != w.With ||
				g.AfterID != w.AfterID || g.BeforeID != w.BeforeID || g.Max != w.Max || g.Last != w.Last {
				t.Fatalf("ParseQuery = %+v, want %+v", q, c.want)
			}
		})
	}
}

// TestQueryForm: the form a client discovers passes the data forms checks.
func TestQueryForm(t *testing.T) {
	if err := mam.QueryForm().Check(); err != nil {
		t.Fatal(err)
	}
}

func TestArchivable(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{`<message type="chat"><body>hi</body></message>`, true},
		{`<message><body>hi</body></message>`, true},
		{`<message type="normal"><body>hi</body></message>`, true},
		{`<message type="chat"><active xmlns="http://jabber.org/protocol/chatstates"/></message>`, false},
		{`<message type="chat"><received xmlns="urn:xmpp:receipts" id="x"/></message>`, true},
		{`<message type="chat"><displayed xmlns="urn:xmpp:chat-markers:0" id="x"/></message>`, true},
		{`<message type="chat"><body>fixed</body><replace xmlns="urn:xmpp:message-correct:0" id="x"/></message>`, true},
		{`<message type="chat"><retract xmlns="urn:xmpp:message-retract:1" id="x"/></message>`, true},
		{`<message type="chat"><apply-to xmlns="urn:xmpp:fasten:0" id="x"><retract xmlns="urn:xmpp:message-retract:0"/></apply-to></message>`, true},
		{`<message type="error"><body>hi</body></message>`, false},
		{`<message type="groupchat"><body>hi</body></message>`, false},
		{`<message type="headline"><body>news</body></message>`, false},
		{`<message type="chat"><body>hi</body><no-store xmlns="urn:xmpp:hints"/></message>`, false},
		{`<message type="chat"><body>hi</body><no-permanent-store xmlns="urn:xmpp:hints"/></message>`, false},
		{`<message type="chat"><composing xmlns="http://jabber.org/protocol/chatstates"/><store xmlns="urn:xmpp:hints"/></message>`, true},
		{`<message type="chat"><sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"/></sent></message>`, false},
	} {
		if got := mam.Archivable(element(t, c.msg)); got != c.want {
			t.Errorf("Archivable(%s) = %v, want %v", c.msg, got, c.want)
		}
	}
}

func TestArchivableInRoom(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{`<message type="groupchat"><body>hi</body></message>`, true},
		{`<message type="chat"><body>hi</body></message>`, false},
		{`<message type="groupchat"><subject>Plans</subject></message>`, false},
		{`<message type="groupchat"><subject>Plans</subject><body>now about plans</body></message>`, true},
		{`<message type="groupchat"><active xmlns="http://jabber.org/protocol/chatstates"/></message>`, false},
		{`<message type="groupchat"><displayed xmlns="urn:xmpp:chat-markers:0" id="x"/></message>`, true},
		{`<message type="groupchat"><body>fixed</body><replace xmlns="urn:xmpp:message-correct:0" id="x"/></message>`, true},
		{`<message type="groupchat"><retract xmlns="urn:xmpp:message-retract:1" id="x"/></message>`, true},
		{`<message type="groupchat"><body>hi</body><no-store xmlns="urn:xmpp:hints"/></message>`, false},
	} {
		if got := mam.ArchivableInRoom(element(t, c.msg)); got != c.want {
			t.Errorf("ArchivableInRoom(%s) = %v, want %v", c.msg, got, c.want)
		}
	}
}

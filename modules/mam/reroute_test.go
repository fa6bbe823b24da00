package mam_test

import (
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// TestRerouted: a message that offline storage routes again (a session
// became available between the router's look and the store's) comes by the
// MessageIn stage a second time with the stanza-id stamped the first time:
// it keeps that id and is archived once. A stanza-id by the account on a
// message that never went that way is stripped and replaced.
func TestRerouted(t *testing.T) {
	var m *mam.Module
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.Modules = append(modules.Default(modules.Options{Store: srv.Store, Archive: modules.Archive{Disabled: true}}),
			&mam.Module{Store: srv.Store})
		m = srv.Modules[len(srv.Modules)-1].(*mam.Module)
	})
	bob := s.AddUser(t, "bob", "pw")
	ctx := t.Context()
	msg := func() *xmpp.Element {
		el, err := xmpp.ParseStanza([]byte(`<message xmlns="jabber:client" type="chat" from="carl@remote.test/x" to="bob@localhost"><body>hi</body></message>`))
		if err != nil {
			t.Fatal(err)
		}
		return el
	}
	ev := func(st *xmpp.Element) *xmpp.StanzaEvent {
		return &xmpp.StanzaEvent{Stanza: st, To: jid.MustParse("bob@localhost")}
	}

	st := msg()
	mam.Received(m, ctx, ev(st))
	stamped := stanzaIDs(st, bob.String())
	if len(stamped) != 1 {
		t.Fatalf("stanza-ids stamped: %v", stamped)
	}
	first := stamped[0]
	mam.Undeliverable(m, ctx, ev(st))
	mam.Received(m, ctx, ev(st)) // offline storage routes it again
	if ids := stanzaIDs(st, bob.String()); len(ids) != 1 || ids[0] != first {
		t.Fatalf("stanza-ids after routing again: %v, want only %s", ids, first)
	}

	// The same id on another message, which did not go to offline storage,
	// is a copy: stripped and replaced.
	other := msg()
	other.Children = append(other.Children, xmpp.NewElement(mam.NSSID, "stanza-id", "by", bob.String(), "id", first))
	mam.Received(m, ctx, ev(other))
	if ids := stanzaIDs(other, bob.String()); len(ids) != 1 || ids[0] == first {
		t.Fatalf("a copied stanza-id was kept: %v", ids)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := s.Store.QueryArchive(ctx, bob.String(), storage.ArchiveQuery{})
	if err != nil || len(page.Messages) != 2 {
		t.Fatalf("bob's archive: %d messages, %v; want 2", len(page.Messages), err)
	}
}

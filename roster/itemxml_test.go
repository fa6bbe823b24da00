package roster

import (
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// TestItemXML: the roster result written straight into bytes is what the
// item elements (which pushes still use) serialise to, byte for byte, so
// that the version of a result and of a push agree.
func TestItemXML(t *testing.T) {
	items := []item{
		{RosterItem: storage.RosterItem{Contact: "a@x", Subscription: storage.SubNone}},
		{RosterItem: storage.RosterItem{Contact: "b@x", Name: `Bob "B" <&>'`, Subscription: storage.SubTo, Ask: true}},
		{RosterItem: storage.RosterItem{Contact: "c@x", Subscription: storage.SubNone, Ask: true, Approved: true}},
		{RosterItem: storage.RosterItem{Contact: "d@x", Subscription: storage.SubFrom, Approved: true, Groups: []string{"Friends"}}},
		{RosterItem: storage.RosterItem{Contact: "e@x", Subscription: storage.SubNone}, shared: []string{"Team"}},
		{RosterItem: storage.RosterItem{Contact: "f@x", Subscription: storage.SubTo, Ask: true,
			Groups: []string{"A", "M & M", "Z"}}, shared: []string{"B", "M & M", "Team", "Zz"}},
		{RosterItem: storage.RosterItem{Contact: "g@x", Subscription: storage.SubBoth, Groups: []string{"x"}}, shared: []string{"a"}},
		{RosterItem: storage.RosterItem{Contact: "h@x", Subscription: storage.SubBoth, Groups: []string{"a", "b"}}, shared: []string{"a", "b"}},
	}
	for _, it := range items {
		want := string(it.element().Append(nil, NSRoster))
		if got := string(it.appendXML(nil)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", it.Contact, got, want)
		}
	}
	raw, v := rosterXML(items)
	var all []byte
	for _, it := range items {
		all = it.element().Append(all, NSRoster)
	}
	if string(raw) != string(all) {
		t.Errorf("rosterXML = %s, want %s", raw, all)
	}
	if _, v2 := rosterXML(items[1:]); v2 == v {
		t.Error("two different rosters have one version")
	}
}

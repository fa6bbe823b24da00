package storage_test

import (
	"slices"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func TestGroupValidate(t *testing.T) {
	for _, tt := range []struct {
		g     storage.Group
		valid bool
	}{
		{storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}, true},
		{storage.Group{ID: "apollo", Kind: storage.KindProject, Parent: "eng"}, true},
		{storage.Group{ID: "loose", Kind: storage.KindProject}, true},
		{storage.Group{Kind: storage.KindTeam, Name: "No ID"}, false},
		{storage.Group{ID: "x", Kind: "club"}, false},
		{storage.Group{ID: "x"}, false},
		{storage.Group{ID: "ops", Kind: storage.KindTeam, Parent: "eng"}, false},
	} {
		if err := tt.g.Validate(); (err == nil) != tt.valid {
			t.Errorf("%+v.Validate() = %v, want valid %v", tt.g, err, tt.valid)
		}
	}
}

func TestNormalGroups(t *testing.T) {
	for _, tt := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{}, nil},
		{[]string{"b", "a", "b", "B", "é", "a"}, []string{"B", "a", "b", "é"}},
	} {
		in := slices.Clone(tt.in)
		got := storage.NormalGroups(in)
		if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("storage.NormalGroups(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("storage.NormalGroups(%q) changed its argument to %q", tt.in, in)
		}
	}
}

func TestRosterItemNormal(t *testing.T) {
	got := storage.RosterItem{Contact: "a@example.com", Groups: []string{"b", "a", "b"}}.Normal()
	want := storage.RosterItem{Contact: "a@example.com", Subscription: storage.SubNone, Groups: []string{"a", "b"}}
	if got.Contact != want.Contact || got.Subscription != want.Subscription || !slices.Equal(got.Groups, want.Groups) {
		t.Errorf("Normal() = %+v, want %+v", got, want)
	}
	if got := (storage.RosterItem{Subscription: storage.SubBoth}).Normal(); got.Subscription != storage.SubBoth {
		t.Errorf("Normal() changed Subscription %s to %s", storage.SubBoth, got.Subscription)
	}
}

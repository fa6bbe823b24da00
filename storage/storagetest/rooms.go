package storagetest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// errAny, as a wanted error, accepts any error but nil.
var errAny = errors.New("any error")

func runRooms(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	// Not UTC and not a whole second: backends keep seconds at least and
	// return UTC.
	created := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))
	const team = "team@conference.example.com"

	t.Run("RoundTrip", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		full := fullRoomConfig()
		// Guard: a field added to RoomConfig must be set in fullRoomConfig,
		// or this case would not show that it survives the round trip.
		v := reflect.ValueOf(full)
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Fatalf("fullRoomConfig leaves RoomConfig.%s zero", v.Type().Field(i).Name)
			}
		}
		for _, c := range []struct {
			name string
			room storage.Room
		}{
			{"Zero", storage.Room{JID: "zero@conference.example.com", Created: created}},
			{"EveryField", storage.Room{JID: team, Config: full,
				Subject: "Ship it\n— by Friday", SubjectBy: "Zoë", Created: created}},
			// Characters that JSON and SQL quoting must carry through.
			{"Awkward", storage.Room{JID: "o'brien@conference.example.com",
				Config:  storage.RoomConfig{Name: `"quoted" \ back'slash`, Description: "{\"a\":1}\t<x/>&amp;", Password: "%_*?'\""},
				Subject: "'; DROP TABLE rooms; --", SubjectBy: `"`, Created: created.Add(-20 * 365 * 24 * time.Hour)}},
		} {
			t.Run(c.name, func(t *testing.T) {
				if err := s.SaveRoom(ctx, c.room); err != nil {
					t.Fatalf("SaveRoom: %v", err)
				}
				got, err := s.Room(ctx, c.room.JID)
				if err != nil {
					t.Fatalf("Room: %v", err)
				}
				checkRoom(t, got, c.room)
			})
		}
	})

	// A later save replaces configuration and subject but keeps Created.
	t.Run("Replace", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		first := storage.Room{JID: team, Config: fullRoomConfig(), Subject: "Old", SubjectBy: "alice", Created: created}
		if err := s.SaveRoom(ctx, first); err != nil {
			t.Fatalf("SaveRoom: %v", err)
		}
		for _, later := range []time.Time{created.Add(time.Hour), {}} {
			second := storage.Room{JID: team, Config: storage.RoomConfig{Name: "Renamed", Public: true},
				Subject: "", SubjectBy: "", Created: later}
			if err := s.SaveRoom(ctx, second); err != nil {
				t.Fatalf("second SaveRoom: %v", err)
			}
			got, err := s.Room(ctx, team)
			if err != nil {
				t.Fatalf("Room: %v", err)
			}
			want := second
			want.Created = created
			checkRoom(t, got, want)
		}
	})

	// A zero Created is the time of the first save.
	t.Run("ZeroCreated", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		before := time.Now().Truncate(time.Second)
		if err := s.SaveRoom(ctx, storage.Room{JID: team}); err != nil {
			t.Fatalf("SaveRoom: %v", err)
		}
		after := time.Now()
		got, err := s.Room(ctx, team)
		if err != nil {
			t.Fatalf("Room: %v", err)
		}
		if got.Created.Before(before) || got.Created.After(after) {
			t.Errorf("Created = %v, want between %v and %v", got.Created, before, after)
		}
	})

	t.Run("ListRooms", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		got, err := s.ListRooms(ctx)
		if err != nil {
			t.Fatalf("ListRooms on an empty store: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("ListRooms on an empty store = %+v, want none", got)
		}
		// Byte order, not a locale's.
		jids := []string{"zoe@conference.example.com", "ab@conference.example.com", "a.c@conference.example.com",
			"a@conference.example.com", "b@conference.example.com", "é@conference.example.com",
			"e@conference.example.org", "A@conference.example.com"}
		var want []storage.Room
		for i, jid := range jids {
			r := storage.Room{JID: jid, Config: storage.RoomConfig{Name: jid, MaxOccupants: i}, Subject: "s" + jid,
				Created: created.Add(time.Duration(i) * time.Minute)}
			if err := s.SaveRoom(ctx, r); err != nil {
				t.Fatalf("SaveRoom(%s): %v", jid, err)
			}
			if jid != "b@conference.example.com" {
				want = append(want, r)
			}
		}
		if err := s.DeleteRoom(ctx, "b@conference.example.com"); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		slices.SortFunc(want, func(a, b storage.Room) int { return strings.Compare(a.JID, b.JID) })
		got, err = s.ListRooms(ctx)
		if err != nil {
			t.Fatalf("ListRooms: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("ListRooms = %q, want (byte order) %q", roomJIDs(got), roomJIDs(want))
		}
		for i := range got {
			checkRoom(t, got[i], want[i])
		}
	})

	// Every operation on an absent room fails with ErrNotFound and creates
	// nothing.
	t.Run("Absent", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, c := range []struct {
			name string
			op   func() error
		}{
			{"Room", func() error { _, err := s.Room(ctx, team); return err }},
			{"DeleteRoom", func() error { return s.DeleteRoom(ctx, team) }},
			{"Affiliations", func() error { _, err := s.Affiliations(ctx, team); return err }},
			{"SetAffiliation", func() error {
				return s.SetAffiliation(ctx, team, storage.Affiliation{JID: "alice@example.com", Affiliation: storage.AffMember})
			}},
			{"SetAffiliationNone", func() error {
				return s.SetAffiliation(ctx, team, storage.Affiliation{JID: "alice@example.com", Affiliation: storage.AffNone})
			}},
		} {
			wantErr(t, c.name+" of an absent room", c.op(), storage.ErrNotFound)
		}
		if rooms, err := s.ListRooms(ctx); err != nil || len(rooms) != 0 {
			t.Errorf("ListRooms = %+v, %v; want none", rooms, err)
		}
	})

	// Deleting a room takes its affiliations, and only its own.
	t.Run("Delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const other = "other@conference.example.com"
		otherAffs := []storage.Affiliation{{JID: "alice@example.com", Affiliation: storage.AffOwner}}
		for _, jid := range []string{team, other} {
			if err := s.SaveRoom(ctx, storage.Room{JID: jid, Created: created}); err != nil {
				t.Fatalf("SaveRoom(%s): %v", jid, err)
			}
		}
		setAffiliations(t, s, team, []storage.Affiliation{
			{JID: "alice@example.com", Affiliation: storage.AffOwner},
			{JID: "bob@example.com", Affiliation: storage.AffOutcast, Reason: "spam"},
		})
		setAffiliations(t, s, other, otherAffs)
		if err := s.DeleteRoom(ctx, team); err != nil {
			t.Fatalf("DeleteRoom: %v", err)
		}
		_, err := s.Room(ctx, team)
		wantErr(t, "Room after DeleteRoom", err, storage.ErrNotFound)
		_, err = s.Affiliations(ctx, team)
		wantErr(t, "Affiliations after DeleteRoom", err, storage.ErrNotFound)
		err = s.DeleteRoom(ctx, team)
		wantErr(t, "second DeleteRoom", err, storage.ErrNotFound)
		checkAffiliations(t, s, other, otherAffs)
		// The JID is free again, with no affiliations left over.
		if err := s.SaveRoom(ctx, storage.Room{JID: team, Created: created.Add(time.Hour)}); err != nil {
			t.Fatalf("SaveRoom after DeleteRoom: %v", err)
		}
		checkAffiliations(t, s, team, nil)
		if got, err := s.Room(ctx, team); err != nil || !sameSecond(got.Created, created.Add(time.Hour)) {
			t.Errorf("re-created room: Room = %+v, %v; want Created from the new save", got, err)
		}
	})

	t.Run("SetAffiliation", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const alice, bob = "alice@example.com", "bob@example.com"
		for i, c := range []struct {
			name  string
			room  bool // whether the room exists
			setup []storage.Affiliation
			set   storage.Affiliation
			err   error // nil, errAny or an error for errors.Is
			want  []storage.Affiliation
		}{
			{name: "Add", room: true,
				set:  storage.Affiliation{JID: alice, Affiliation: storage.AffMember, Nick: "Al"},
				want: []storage.Affiliation{{JID: alice, Affiliation: storage.AffMember, Nick: "Al"}}},
			{name: "Replace", room: true,
				setup: []storage.Affiliation{{JID: alice, Affiliation: storage.AffMember, Nick: "Al", Reason: "invited"}},
				set:   storage.Affiliation{JID: alice, Affiliation: storage.AffOutcast, Reason: "spam"},
				want:  []storage.Affiliation{{JID: alice, Affiliation: storage.AffOutcast, Reason: "spam"}}},
			{name: "NoneRemoves", room: true,
				setup: []storage.Affiliation{{JID: alice, Affiliation: storage.AffMember}, {JID: bob, Affiliation: storage.AffAdmin}},
				set:   storage.Affiliation{JID: alice, Affiliation: storage.AffNone},
				want:  []storage.Affiliation{{JID: bob, Affiliation: storage.AffAdmin}}},
			{name: "NoneOfUnaffiliated", room: true,
				setup: []storage.Affiliation{{JID: bob, Affiliation: storage.AffAdmin}},
				set:   storage.Affiliation{JID: alice, Affiliation: storage.AffNone},
				want:  []storage.Affiliation{{JID: bob, Affiliation: storage.AffAdmin}}},
			{name: "UnknownAffiliation", room: true,
				setup: []storage.Affiliation{{JID: alice, Affiliation: storage.AffMember}},
				set:   storage.Affiliation{JID: alice, Affiliation: "moderator"},
				err:   errAny,
				want:  []storage.Affiliation{{JID: alice, Affiliation: storage.AffMember}}},
			{name: "EmptyAffiliation", room: true,
				set: storage.Affiliation{JID: alice},
				err: errAny},
			{name: "AbsentRoom",
				set: storage.Affiliation{JID: alice, Affiliation: storage.AffMember},
				err: storage.ErrNotFound},
			{name: "NoneInAbsentRoom",
				set: storage.Affiliation{JID: alice, Affiliation: storage.AffNone},
				err: storage.ErrNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				room := string(rune('a'+i)) + "@conference.example.com" // one room per case
				if c.room {
					if err := s.SaveRoom(ctx, storage.Room{JID: room, Created: created}); err != nil {
						t.Fatalf("SaveRoom: %v", err)
					}
				}
				setAffiliations(t, s, room, c.setup)
				err := s.SetAffiliation(ctx, room, c.set)
				switch {
				case c.err == errAny && err == nil:
					t.Errorf("SetAffiliation(%+v) succeeded, want an error", c.set)
				case c.err == errAny:
				case c.err == nil && err != nil:
					t.Fatalf("SetAffiliation(%+v): %v", c.set, err)
				default:
					wantErr(t, "SetAffiliation", err, c.err)
				}
				if !c.room {
					_, err := s.Room(ctx, room)
					wantErr(t, "Room after SetAffiliation", err, storage.ErrNotFound)
					return
				}
				checkAffiliations(t, s, room, c.want)
			})
		}
	})

	// Affiliations come sorted by JID, in byte order, and belong to one room.
	t.Run("AffiliationsSorted", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const other = "other@conference.example.com"
		for _, jid := range []string{team, other} {
			if err := s.SaveRoom(ctx, storage.Room{JID: jid, Created: created}); err != nil {
				t.Fatalf("SaveRoom(%s): %v", jid, err)
			}
		}
		checkAffiliations(t, s, team, nil)
		affs := []storage.Affiliation{
			{JID: "zoe@example.com", Affiliation: storage.AffMember, Nick: "Zoë"},
			{JID: "ab@example.com", Affiliation: storage.AffAdmin},
			{JID: "a.c@example.com", Affiliation: storage.AffMember},
			{JID: "a@example.com", Affiliation: storage.AffOwner},
			{JID: "é@example.com", Affiliation: storage.AffMember},
			{JID: "Bob@example.com", Affiliation: storage.AffMember},
			{JID: "spam.example.net", Affiliation: storage.AffOutcast, Reason: "server-wide ban"},
		}
		setAffiliations(t, s, team, affs)
		setAffiliations(t, s, other, []storage.Affiliation{{JID: "a@example.com", Affiliation: storage.AffOutcast}})
		want := slices.Clone(affs)
		slices.SortFunc(want, func(a, b storage.Affiliation) int { return strings.Compare(a.JID, b.JID) })
		checkAffiliations(t, s, team, want)
		checkAffiliations(t, s, other, []storage.Affiliation{{JID: "a@example.com", Affiliation: storage.AffOutcast}})
	})

	// Saves of one new room that race all succeed; one of them sets Created.
	t.Run("ConcurrentSave", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 8
		errs := concurrently(n, func(i int) error {
			return s.SaveRoom(ctx, storage.Room{JID: team, Subject: "race",
				Created: created.Add(time.Duration(i) * time.Hour)})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("goroutine %d: SaveRoom: %v", i, err)
			}
		}
		got, err := s.Room(ctx, team)
		if err != nil {
			t.Fatalf("Room: %v", err)
		}
		var ok bool
		for i := range n {
			ok = ok || sameSecond(got.Created, created.Add(time.Duration(i)*time.Hour))
		}
		if !ok {
			t.Errorf("Created = %v, want one of the saves'", got.Created)
		}
	})

	// What one store saves, another opened on the same database (another
	// process, or this one after a restart) reads back whole.
	t.Run("Reopen", func(t *testing.T) {
		if reopen == nil {
			t.Skip("the backend gave no reopen")
		}
		s, ctx := open(t), t.Context()
		room := storage.Room{JID: team, Config: fullRoomConfig(), Subject: "Ship it", SubjectBy: "Zoë", Created: created}
		affs := []storage.Affiliation{
			{JID: "alice@example.com", Affiliation: storage.AffOwner, Nick: "Al"},
			{JID: "bob@example.com", Affiliation: storage.AffOutcast, Reason: "spam"},
		}
		if err := s.SaveRoom(ctx, room); err != nil {
			t.Fatalf("SaveRoom: %v", err)
		}
		setAffiliations(t, s, team, affs)

		other := reopen(t, s)
		got, err := other.Room(ctx, team)
		if err != nil {
			t.Fatalf("Room from the reopened store: %v", err)
		}
		checkRoom(t, got, room)
		rooms, err := other.ListRooms(ctx)
		if err != nil {
			t.Fatalf("ListRooms from the reopened store: %v", err)
		}
		if len(rooms) != 1 {
			t.Fatalf("ListRooms from the reopened store = %q, want [%s]", roomJIDs(rooms), team)
		}
		checkRoom(t, rooms[0], room)
		checkAffiliations(t, other, team, affs)
	})
}

// fullRoomConfig returns a RoomConfig with no field at its zero value.
func fullRoomConfig() storage.RoomConfig {
	return storage.RoomConfig{
		Name:               "Team",
		Description:        "Where \"we\" talk <b>&</b>\nabout é",
		Persistent:         true,
		Public:             true,
		MembersOnly:        true,
		Moderated:          true,
		Password:           "s3cret é",
		MaxOccupants:       42,
		WhoIs:              "anyone",
		AllowInvites:       true,
		AllowSubjectChange: true,
		HistoryLength:      20,
		AllowPM:            "moderators",
		// Not the default for a persistent room, so that a backend that
		// dropped the field would be seen to.
		Archiving: storage.ArchiveOff,
	}
}

// checkRoom compares got with want, Created to the second, and checks that
// Created is in UTC.
func checkRoom(t *testing.T, got, want storage.Room) {
	t.Helper()
	if got.JID != want.JID || got.Config != want.Config || got.Subject != want.Subject || got.SubjectBy != want.SubjectBy {
		t.Errorf("room =\n  %+v\nwant\n  %+v", got, want)
	}
	if !sameSecond(got.Created, want.Created) {
		t.Errorf("room %s: Created = %v, want %v (to the second)", want.JID, got.Created, want.Created)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("room %s: Created = %v, want it in UTC", want.JID, got.Created)
	}
}

// sameSecond reports whether a and b are the same instant to the second, the
// precision every backend keeps.
func sameSecond(a, b time.Time) bool {
	return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
}

func setAffiliations(t *testing.T, s storage.Store, room string, affs []storage.Affiliation) {
	t.Helper()
	for _, a := range affs {
		if err := s.SetAffiliation(t.Context(), room, a); err != nil {
			t.Fatalf("SetAffiliation(%s, %+v): %v", room, a, err)
		}
	}
}

func checkAffiliations(t *testing.T, s storage.Store, room string, want []storage.Affiliation) {
	t.Helper()
	got, err := s.Affiliations(t.Context(), room)
	if err != nil {
		t.Fatalf("Affiliations(%s): %v", room, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Affiliations(%s) =\n  %+v\nwant\n  %+v", room, got, want)
	}
}

func roomJIDs(rooms []storage.Room) []string {
	jids := make([]string, len(rooms))
	for i, r := range rooms {
		jids[i] = r.JID
	}
	return jids
}

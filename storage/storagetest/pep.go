package storagetest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

func runPEP(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"
	const avatar, nick = "urn:xmpp:avatar:metadata", "http://jabber.org/protocol/nick"
	// Values that a text round trip, a JSON array kept as one string, or a
	// locale's collation would damage: several values, an empty one,
	// markup and non-ASCII.
	whitelist := storage.PEPNode{
		Name: "urn:xmpp:microblog:0",
		Config: map[string][]string{
			"pubsub#access_model":          {"whitelist"},
			"pubsub#roster_groups_allowed": {"Friends", "", "Ünïcödé 🎉", "a<b>&c"},
			"pubsub#title":                 {"Le blog d’Alice"},
			"pubsub#no-value":              nil,
		},
		Affiliations: map[string]string{
			"bob@example.com":   "member",
			"élodie@example.fr": "publisher",
			"mallory@evil.test": "outcast",
		},
	}

	t.Run("CreateAndList", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		checkPEPNodes(t, s, alice, nil)
		// Chosen so that byte order differs from a locale's collation, which
		// ignores punctuation and case and folds accents.
		names := []string{avatar, nick, "Zeta", "é", "e", "a b", "a-c", "ab", whitelist.Name}
		for _, name := range names {
			n := storage.PEPNode{Name: name}
			if name == whitelist.Name {
				n = whitelist
			}
			if err := s.CreatePEPNode(ctx, alice, n, 0); err != nil {
				t.Fatalf("CreatePEPNode(%s): %v", name, err)
			}
		}
		// Another owner's nodes are its own, under the same names too.
		bobs := storage.PEPNode{Name: avatar, Config: map[string][]string{"pubsub#access_model": {"presence"}}}
		if err := s.CreatePEPNode(ctx, bob, bobs, 0); err != nil {
			t.Fatalf("CreatePEPNode for bob: %v", err)
		}
		var want []storage.PEPNode
		for _, name := range slices.Sorted(slices.Values(names)) {
			if name == whitelist.Name {
				want = append(want, whitelist)
			} else {
				want = append(want, storage.PEPNode{Name: name})
			}
		}
		checkPEPNodes(t, s, alice, want)
		checkPEPNodes(t, s, bob, []storage.PEPNode{bobs})
	})

	t.Run("CreateExists", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreatePEPNode(ctx, alice, whitelist, 0); err != nil {
			t.Fatal(err)
		}
		err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: whitelist.Name}, 0)
		wantErr(t, "second CreatePEPNode", err, storage.ErrExists)
		err = s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: whitelist.Name}, 5)
		wantErr(t, "second CreatePEPNode with a limit", err, storage.ErrExists)
		// The refused creates changed nothing.
		checkPEPNodes(t, s, alice, []storage.PEPNode{whitelist})
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, name := range []string{"n1", "n2"} {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: name}, 2); err != nil {
				t.Fatalf("CreatePEPNode(%s) within the limit: %v", name, err)
			}
		}
		err := s.CreatePEPNode(ctx, alice, whitelist, 2)
		wantErr(t, "CreatePEPNode beyond the limit", err, storage.ErrLimit)
		// Nothing was stored.
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: "n1"}, {Name: "n2"}})
		_, err = s.PEPItems(ctx, alice, whitelist.Name, nil, 0)
		wantErr(t, "PEPItems of the refused node", err, storage.ErrNotFound)
		// Both hold: the node is there, which says more.
		err = s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: "n1"}, 2)
		wantErr(t, "CreatePEPNode of an existing node at the limit", err, storage.ErrExists)
		// Another owner has a count of its own.
		if err := s.CreatePEPNode(ctx, bob, storage.PEPNode{Name: "n3"}, 2); err != nil {
			t.Fatalf("CreatePEPNode for bob: %v", err)
		}
		// A deleted node frees its place.
		if err := s.DeletePEPNode(ctx, alice, "n1"); err != nil {
			t.Fatal(err)
		}
		if err := s.CreatePEPNode(ctx, alice, whitelist, 2); err != nil {
			t.Fatalf("CreatePEPNode after a delete: %v", err)
		}
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: "n2"}, whitelist})
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			return stores[i%len(stores)].CreatePEPNode(ctx, alice, storage.PEPNode{Name: fmt.Sprint("n", i)}, 3)
		})
		checkLimited(t, "CreatePEPNode", errs, 3)
		nodes, err := s.PEPNodes(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 3 {
			t.Errorf("%d nodes stored after concurrent CreatePEPNode calls; the limit is 3", len(nodes))
		}
	})

	t.Run("ConcurrentCreateSame", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			n := storage.PEPNode{Name: avatar, Config: map[string][]string{"pubsub#max_items": {fmt.Sprint(i)}}}
			return stores[i%len(stores)].CreatePEPNode(ctx, alice, n, 0)
		})
		checkWinners(t, "CreatePEPNode", errs, 1, storage.ErrExists)
		winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
		checkPEPNodes(t, s, alice, []storage.PEPNode{
			{Name: avatar, Config: map[string][]string{"pubsub#max_items": {fmt.Sprint(winner)}}},
		})
	})

	t.Run("ConfigRoundTrip", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for i, n := range []storage.PEPNode{
			{},
			{Config: map[string][]string{}, Affiliations: map[string]string{}},
			{Config: map[string][]string{"pubsub#a": {}, "pubsub#b": nil, "pubsub#c": {""}}},
			{Config: whitelist.Config},
			{Affiliations: whitelist.Affiliations},
			whitelist,
		} {
			n.Name = fmt.Sprint("node", i)
			if err := s.CreatePEPNode(ctx, alice, n, 0); err != nil {
				t.Fatalf("CreatePEPNode(%+v): %v", n, err)
			}
			checkPEPNode(t, s, alice, n)
			// Update gives back the same as Create, from another start.
			m := whitelist
			m.Name = n.Name
			if err := s.UpdatePEPNode(ctx, alice, m); err != nil {
				t.Fatalf("UpdatePEPNode(%s): %v", n.Name, err)
			}
			checkPEPNode(t, s, alice, m)
			if err := s.UpdatePEPNode(ctx, alice, n); err != nil {
				t.Fatalf("UpdatePEPNode(%s): %v", n.Name, err)
			}
			checkPEPNode(t, s, alice, n)
		}
		// nil and empty read back alike, as Normal says.
		nodes, err := s.PEPNodes(ctx, alice)
		if err != nil || len(nodes) != 6 {
			t.Fatalf("PEPNodes = %d nodes, %v; want 6", len(nodes), err)
		}
		if nodes[0].Config != nil || nodes[0].Affiliations != nil || nodes[1].Config != nil || nodes[1].Affiliations != nil {
			t.Errorf("nodes without config or affiliations read back as %+v and %+v, want nil maps", nodes[0], nodes[1])
		}
		if v, ok := nodes[2].Config["pubsub#a"]; !ok || v != nil {
			t.Errorf("a field without values read back as %#v (present %v), want nil", v, ok)
		}
	})

	t.Run("Update", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: whitelist.Name}, 0); err != nil {
			t.Fatal(err)
		}
		publishPEP(t, s, alice, whitelist.Name, 0, "a", "b")
		if err := s.UpdatePEPNode(ctx, alice, whitelist); err != nil {
			t.Fatalf("UpdatePEPNode: %v", err)
		}
		checkPEPNodes(t, s, alice, []storage.PEPNode{whitelist})
		checkPEPItems(t, s, alice, whitelist.Name, "b", "a") // kept
		// Back to the defaults.
		if err := s.UpdatePEPNode(ctx, alice, storage.PEPNode{Name: whitelist.Name}); err != nil {
			t.Fatalf("UpdatePEPNode to the defaults: %v", err)
		}
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: whitelist.Name}})
		// A missing node is not created, nor is another owner's touched.
		err := s.UpdatePEPNode(ctx, alice, storage.PEPNode{Name: avatar, Config: whitelist.Config})
		wantErr(t, "UpdatePEPNode of a missing node", err, storage.ErrNotFound)
		err = s.UpdatePEPNode(ctx, bob, whitelist)
		wantErr(t, "UpdatePEPNode of another owner's node", err, storage.ErrNotFound)
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: whitelist.Name}})
		checkPEPNodes(t, s, bob, nil)
	})

	t.Run("Publish", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: nick}, 0); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Second) // the database's clock may be another's
		stale := time.Date(2000, 1, 2, 3, 4, 5, 6789, time.UTC)
		var stored []storage.PEPItem
		for _, id := range []string{"a", "b", "c"} {
			it := storage.PEPItem{
				ID:        id,
				Publisher: alice + "/phone",
				Payload:   []byte(`<nick xmlns="http://jabber.org/protocol/nick">` + id + `</nick>`),
				Published: stale,
			}
			got, err := s.PublishPEPItem(ctx, alice, nick, it, 0)
			if err != nil {
				t.Fatalf("PublishPEPItem(%s): %v", id, err)
			}
			after := time.Now().Add(time.Second)
			if got.ID != it.ID || got.Publisher != it.Publisher || !bytes.Equal(got.Payload, it.Payload) {
				t.Errorf("PublishPEPItem returned %+v, want %+v with Published set", got, it)
			}
			if got.Published.Before(before) || got.Published.After(after) {
				t.Errorf("Published = %v, want the time of the publish (between %v and %v), not the caller's", got.Published, before, after)
			}
			if !got.Published.Equal(got.Published.Truncate(time.Microsecond)) {
				t.Errorf("Published = %v, finer than the microsecond that the store keeps", got.Published)
			}
			stored = append(stored, got)
		}
		items := checkPEPItems(t, s, alice, nick, "c", "b", "a")
		for i, it := range items {
			checkPEPItem(t, it, stored[2-i])
		}
		// Replacing an id keeps one item, the newest now, with what the
		// last publish gave.
		repl := storage.PEPItem{ID: "a", Publisher: alice + "/laptop", Payload: []byte(`<nick xmlns="http://jabber.org/protocol/nick">Al</nick>`)}
		got, err := s.PublishPEPItem(ctx, alice, nick, repl, 0)
		if err != nil {
			t.Fatalf("PublishPEPItem replacing: %v", err)
		}
		if got.Published.Before(stored[2].Published) {
			t.Errorf("the republished item's Published %v is before the last publish's %v", got.Published, stored[2].Published)
		}
		items = checkPEPItems(t, s, alice, nick, "a", "c", "b")
		checkPEPItem(t, items[0], got)
		// A node of the same name of another owner is another node.
		_, err = s.PublishPEPItem(ctx, bob, nick, repl, 0)
		wantErr(t, "PublishPEPItem to another owner's node", err, storage.ErrNotFound)
	})

	t.Run("PublishMissingNode", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		_, err := s.PublishPEPItem(ctx, alice, nick, storage.PEPItem{ID: "a", Publisher: alice}, 0)
		wantErr(t, "PublishPEPItem to a missing node", err, storage.ErrNotFound)
		_, err = s.PublishPEPItem(ctx, alice, nick, storage.PEPItem{ID: "a", Publisher: alice}, 1)
		wantErr(t, "PublishPEPItem with maxItems to a missing node", err, storage.ErrNotFound)
		// Nothing was created.
		checkPEPNodes(t, s, alice, nil)
		checkLastPEPItems(t, s, alice, nil)
		_, err = s.PEPItems(ctx, alice, nick, nil, 0)
		wantErr(t, "PEPItems after a publish to a missing node", err, storage.ErrNotFound)
	})

	t.Run("MaxItems", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, name := range []string{"three", "one", "all"} {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: name}, 0); err != nil {
				t.Fatal(err)
			}
		}
		publishPEP(t, s, alice, "three", 3, "a", "b", "c", "d", "e")
		checkPEPItems(t, s, alice, "three", "e", "d", "c")
		// Republishing a kept item at the limit keeps three, it the newest.
		publishPEP(t, s, alice, "three", 3, "c")
		checkPEPItems(t, s, alice, "three", "c", "e", "d")
		// Republishing a pruned one brings it back, and prunes the oldest.
		publishPEP(t, s, alice, "three", 3, "a")
		checkPEPItems(t, s, alice, "three", "a", "c", "e")
		// A lower maxItems prunes down to it.
		publishPEP(t, s, alice, "three", 1, "f")
		checkPEPItems(t, s, alice, "three", "f")

		// 1, PEP's default: the last item only (XEP-0163 §4.3).
		publishPEP(t, s, alice, "one", 1, "x", "y", "z")
		checkPEPItems(t, s, alice, "one", "z")
		publishPEP(t, s, alice, "one", 1, "z")
		checkPEPItems(t, s, alice, "one", "z")

		// 0 keeps everything.
		var ids []string
		for i := range 20 {
			ids = append(ids, fmt.Sprintf("i%02d", i))
		}
		publishPEP(t, s, alice, "all", 0, ids...)
		checkPEPItems(t, s, alice, "all", reversed(ids)...)
		// The other nodes were not pruned by it, nor it by them.
		checkPEPItems(t, s, alice, "three", "f")
		checkPEPItems(t, s, alice, "one", "z")
	})

	t.Run("SameMicrosecond", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: avatar}, 0); err != nil {
			t.Fatal(err)
		}
		// 50 publishes, as fast as the store takes them: many share a
		// Published time on a fast store, and the ids run against the
		// order, so that neither time nor id can stand in for it.
		var ids []string
		for i := range 50 {
			ids = append(ids, fmt.Sprintf("%02d", 49-i))
		}
		publishPEP(t, s, alice, avatar, 0, ids...)
		items := checkPEPItems(t, s, alice, avatar, reversed(ids)...)
		for i := 1; i < len(items); i++ {
			if items[i].Published.After(items[i-1].Published) {
				t.Errorf("item %s (Published %v) is older than %s but was published later (%v)",
					items[i].ID, items[i].Published, items[i-1].ID, items[i-1].Published)
			}
		}
		checkPEPItemsMax(t, s, alice, avatar, 7, reversed(ids)[:7]...)
		checkLastPEPItems(t, s, alice, map[string]string{avatar: ids[49]})
		// Pruning keeps exactly the newest.
		publishPEP(t, s, alice, avatar, 10, "x")
		checkPEPItems(t, s, alice, avatar, append([]string{"x"}, reversed(ids)[:9]...)...)
	})

	t.Run("ConcurrentPublish", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: avatar}, 0); err != nil {
			t.Fatal(err)
		}
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			_, err := stores[i%len(stores)].PublishPEPItem(ctx, alice, avatar,
				storage.PEPItem{ID: fmt.Sprint("i", i), Publisher: alice}, 3)
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("goroutine %d: PublishPEPItem: %v", i, err)
			}
		}
		items, err := s.PEPItems(ctx, alice, avatar, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 3 {
			t.Errorf("%d items kept after concurrent PublishPEPItem calls with maxItems 3", len(items))
		}
		if len(items) > 0 {
			checkLastPEPItems(t, s, alice, map[string]string{avatar: items[0].ID})
		}
	})

	t.Run("PEPItems", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, name := range []string{avatar, nick} {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: name}, 0); err != nil {
				t.Fatal(err)
			}
		}
		// A node without items is not an error, whichever the query.
		checkPEPItems(t, s, alice, avatar)
		checkPEPItemsByID(t, s, alice, avatar, []string{"a"})
		checkPEPItemsMax(t, s, alice, avatar, 1)

		publishPEP(t, s, alice, avatar, 0, "a", "b", "c", "d")
		publishPEP(t, s, alice, nick, 0, "e")
		// By id, newest first whatever the order asked, missing ids and
		// another node's left out, an id asked twice given once; max does
		// not apply.
		checkPEPItemsByID(t, s, alice, avatar, []string{"a", "missing", "c", "e", "a"}, "c", "a")
		checkPEPItemsByID(t, s, alice, avatar, []string{"missing"})
		got, err := s.PEPItems(ctx, alice, avatar, []string{"a", "b", "c"}, 1)
		if err != nil || len(got) != 3 {
			t.Errorf("PEPItems by 3 ids with max 1 = %d items, %v; want 3", len(got), err)
		}
		// By max.
		checkPEPItemsMax(t, s, alice, avatar, 1, "d")
		checkPEPItemsMax(t, s, alice, avatar, 3, "d", "c", "b")
		checkPEPItemsMax(t, s, alice, avatar, 4, "d", "c", "b", "a")
		checkPEPItemsMax(t, s, alice, avatar, 10, "d", "c", "b", "a")
		checkPEPItemsMax(t, s, alice, avatar, -1, "d", "c", "b", "a")
		// A missing node, of this owner or of another, whichever the query.
		for _, q := range []struct {
			owner, node string
			ids         []string
			max         int
		}{
			{alice, "missing", nil, 0}, {alice, "missing", []string{"a"}, 0}, {alice, "missing", nil, 1},
			{bob, avatar, nil, 0}, {bob, avatar, []string{"a"}, 0},
		} {
			_, err := s.PEPItems(ctx, q.owner, q.node, q.ids, q.max)
			wantErr(t, fmt.Sprintf("PEPItems(%s, %s, %q, %d)", q.owner, q.node, q.ids, q.max), err, storage.ErrNotFound)
		}
	})

	t.Run("LastPEPItems", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		checkLastPEPItems(t, s, alice, nil)
		for _, name := range []string{avatar, nick, "empty", "purged"} {
			for _, o := range []string{alice, bob} {
				if err := s.CreatePEPNode(ctx, o, storage.PEPNode{Name: name}, 0); err != nil {
					t.Fatal(err)
				}
			}
		}
		publishPEP(t, s, alice, avatar, 0, "a1", "a2")
		publishPEP(t, s, alice, nick, 0, "n2", "n1") // against the id order
		publishPEP(t, s, alice, "purged", 0, "p1")
		publishPEP(t, s, alice, avatar, 0, "a1") // the newest again
		publishPEP(t, s, bob, avatar, 0, "b1")
		publishPEP(t, s, bob, "empty", 0, "b2")
		if err := s.PurgePEPNode(ctx, alice, "purged"); err != nil {
			t.Fatal(err)
		}
		checkLastPEPItems(t, s, alice, map[string]string{avatar: "a1", nick: "n1"})
		checkLastPEPItems(t, s, bob, map[string]string{avatar: "b1", "empty": "b2"})
		// What it returns is the item as PEPItems has it.
		last, err := s.LastPEPItems(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		items := checkPEPItemsMax(t, s, alice, avatar, 1, "a1")
		checkPEPItem(t, last[avatar], items[0])
		// A retraction makes the one before the last.
		if err := s.RetractPEPItem(ctx, alice, avatar, "a1"); err != nil {
			t.Fatal(err)
		}
		checkLastPEPItems(t, s, alice, map[string]string{avatar: "a2", nick: "n1"})
	})

	t.Run("Retract", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, name := range []string{avatar, nick} {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: name}, 0); err != nil {
				t.Fatal(err)
			}
		}
		publishPEP(t, s, alice, avatar, 0, "a", "b", "c")
		publishPEP(t, s, alice, nick, 0, "a")
		if err := s.RetractPEPItem(ctx, alice, avatar, "b"); err != nil {
			t.Fatalf("RetractPEPItem: %v", err)
		}
		checkPEPItems(t, s, alice, avatar, "c", "a")
		err := s.RetractPEPItem(ctx, alice, avatar, "b")
		wantErr(t, "RetractPEPItem of a retracted item", err, storage.ErrNotFound)
		err = s.RetractPEPItem(ctx, alice, "missing", "a")
		wantErr(t, "RetractPEPItem from a missing node", err, storage.ErrNotFound)
		err = s.RetractPEPItem(ctx, bob, avatar, "a")
		wantErr(t, "RetractPEPItem from another owner's node", err, storage.ErrNotFound)
		// The same id in another node is another item.
		if err := s.RetractPEPItem(ctx, alice, nick, "a"); err != nil {
			t.Fatalf("RetractPEPItem(nick, a): %v", err)
		}
		checkPEPItems(t, s, alice, nick)
		checkPEPItems(t, s, alice, avatar, "c", "a")
	})

	t.Run("Purge", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, name := range []string{avatar, nick} {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: name}, 0); err != nil {
				t.Fatal(err)
			}
		}
		publishPEP(t, s, alice, avatar, 0, "a", "b")
		publishPEP(t, s, alice, nick, 0, "n")
		if err := s.PurgePEPNode(ctx, alice, avatar); err != nil {
			t.Fatalf("PurgePEPNode: %v", err)
		}
		checkPEPItems(t, s, alice, avatar)
		checkPEPItems(t, s, alice, nick, "n")
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: nick}, {Name: avatar}})
		if err := s.PurgePEPNode(ctx, alice, avatar); err != nil {
			t.Fatalf("PurgePEPNode of an empty node: %v", err)
		}
		// The node takes items again.
		publishPEP(t, s, alice, avatar, 0, "b")
		checkPEPItems(t, s, alice, avatar, "b")
		err := s.PurgePEPNode(ctx, alice, "missing")
		wantErr(t, "PurgePEPNode of a missing node", err, storage.ErrNotFound)
		err = s.PurgePEPNode(ctx, bob, avatar)
		wantErr(t, "PurgePEPNode of another owner's node", err, storage.ErrNotFound)
	})

	t.Run("DeleteNode", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, o := range []string{alice, bob} {
			for _, name := range []string{avatar, nick} {
				if err := s.CreatePEPNode(ctx, o, storage.PEPNode{Name: name, Config: whitelist.Config}, 0); err != nil {
					t.Fatal(err)
				}
				publishPEP(t, s, o, name, 0, "a", "b")
			}
		}
		if err := s.DeletePEPNode(ctx, alice, avatar); err != nil {
			t.Fatalf("DeletePEPNode: %v", err)
		}
		_, err := s.PEPItems(ctx, alice, avatar, nil, 0)
		wantErr(t, "PEPItems of a deleted node", err, storage.ErrNotFound)
		err = s.DeletePEPNode(ctx, alice, avatar)
		wantErr(t, "second DeletePEPNode", err, storage.ErrNotFound)
		checkPEPNodes(t, s, alice, []storage.PEPNode{{Name: nick, Config: whitelist.Config}})
		checkLastPEPItems(t, s, alice, map[string]string{nick: "b"})
		checkPEPItems(t, s, bob, avatar, "b", "a")
		// A node created again under the name starts empty, with its own
		// configuration.
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: avatar}, 0); err != nil {
			t.Fatalf("CreatePEPNode after DeletePEPNode: %v", err)
		}
		checkPEPItems(t, s, alice, avatar)
		checkPEPNode(t, s, alice, storage.PEPNode{Name: avatar})
		checkLastPEPItems(t, s, alice, map[string]string{nick: "b"})
	})

	t.Run("Payload", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		payloads := map[string][]byte{
			"nil":   nil,
			"empty": {},
			"xml": []byte("<geoloc xmlns='http://jabber.org/protocol/geoloc' xml:lang='fr'>\r\n\t" +
				"<locality>Zürich &amp; 東京 🎉</locality>\n</geoloc>  "),
			// Bytes that a text column or a NUL-terminated string would
			// damage.
			"bytes": {0x00, 0xff, 0xfe, '<', 0x00, 0xc3, 0x28, 0x80},
			"big":   bytes.Repeat([]byte("<data xmlns='urn:xmpp:avatar:data'>QUJD</data>"), 2000),
		}
		for id, p := range payloads {
			if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: id}, 0); err != nil {
				t.Fatal(err)
			}
			got, err := s.PublishPEPItem(ctx, alice, id, storage.PEPItem{ID: id, Publisher: "alice@example.com/Ré", Payload: p}, 1)
			if err != nil {
				t.Fatalf("PublishPEPItem(%s): %v", id, err)
			}
			if !bytes.Equal(got.Payload, p) {
				t.Errorf("PublishPEPItem(%s) returned payload %q, want %q", id, got.Payload, p)
			}
		}
		last, err := s.LastPEPItems(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		for id, p := range payloads {
			items := checkPEPItems(t, s, alice, id, id)
			if !bytes.Equal(items[0].Payload, p) || items[0].Publisher != "alice@example.com/Ré" {
				t.Errorf("PEPItems(%s) = payload %q from %q, want %q from alice@example.com/Ré", id, items[0].Payload, items[0].Publisher, p)
			}
			if !bytes.Equal(last[id].Payload, p) {
				t.Errorf("LastPEPItems[%s] = payload %q, want %q", id, last[id].Payload, p)
			}
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, alice, creds(1)); err != nil {
			t.Fatal(err)
		}
		for _, o := range []string{alice, bob} {
			for _, n := range []storage.PEPNode{{Name: avatar}, whitelist} {
				if err := s.CreatePEPNode(ctx, o, n, 0); err != nil {
					t.Fatal(err)
				}
				publishPEP(t, s, o, n.Name, 0, "a", "b")
			}
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		checkPEPNodes(t, s, alice, nil)
		checkLastPEPItems(t, s, alice, nil)
		_, err := s.PEPItems(ctx, alice, avatar, nil, 0)
		wantErr(t, "PEPItems after DeleteUser", err, storage.ErrNotFound)
		// Nothing is left to come back with a node of the same name.
		if err := s.CreatePEPNode(ctx, alice, storage.PEPNode{Name: avatar}, 1); err != nil {
			t.Fatalf("CreatePEPNode after DeleteUser: %v", err)
		}
		checkPEPItems(t, s, alice, avatar)
		// bob's are untouched.
		checkPEPNodes(t, s, bob, []storage.PEPNode{{Name: avatar}, whitelist})
		checkLastPEPItems(t, s, bob, map[string]string{avatar: "b", whitelist.Name: "b"})
	})

	if reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s, ctx := open(t), t.Context()
			if err := s.CreatePEPNode(ctx, alice, whitelist, 0); err != nil {
				t.Fatal(err)
			}
			s2 := reopen(t, s)
			// Publishes through either handle take one order.
			publishPEP(t, s, alice, whitelist.Name, 0, "c")
			publishPEP(t, s2, alice, whitelist.Name, 0, "b")
			publishPEP(t, s, alice, whitelist.Name, 0, "a")
			want := checkPEPItems(t, s, alice, whitelist.Name, "a", "b", "c")
			checkPEPNodes(t, s2, alice, []storage.PEPNode{whitelist})
			got := checkPEPItems(t, s2, alice, whitelist.Name, "a", "b", "c")
			for i := range want {
				checkPEPItem(t, got[i], want[i])
			}
			checkLastPEPItems(t, s2, alice, map[string]string{whitelist.Name: "a"})
		})
	}
}

// publishPEP publishes items with the given ids in order, each with a
// payload naming it, and maxItems.
func publishPEP(t *testing.T, s storage.Store, owner, node string, maxItems int, ids ...string) {
	t.Helper()
	for _, id := range ids {
		it := storage.PEPItem{ID: id, Publisher: owner + "/res", Payload: []byte("<x xmlns='urn:test'>" + id + "</x>")}
		if _, err := s.PublishPEPItem(t.Context(), owner, node, it, maxItems); err != nil {
			t.Fatalf("PublishPEPItem(%s, %s, %s): %v", owner, node, id, err)
		}
	}
}

// checkPEPItems checks that owner's node holds the items wantIDs, newest
// first, and returns them.
func checkPEPItems(t *testing.T, s storage.Store, owner, node string, wantIDs ...string) []storage.PEPItem {
	t.Helper()
	return checkPEPItemsMax(t, s, owner, node, 0, wantIDs...)
}

// checkPEPItemsMax checks PEPItems(owner, node, nil, max) against wantIDs.
func checkPEPItemsMax(t *testing.T, s storage.Store, owner, node string, max int, wantIDs ...string) []storage.PEPItem {
	t.Helper()
	got, err := s.PEPItems(t.Context(), owner, node, nil, max)
	if err != nil {
		t.Fatalf("PEPItems(%s, %s, max %d): %v", owner, node, max, err)
	}
	checkPEPItemIDs(t, fmt.Sprintf("PEPItems(%s, %s, max %d)", owner, node, max), got, wantIDs)
	return got
}

// checkPEPItemsByID checks PEPItems(owner, node, ids, 0) against wantIDs.
func checkPEPItemsByID(t *testing.T, s storage.Store, owner, node string, ids []string, wantIDs ...string) {
	t.Helper()
	got, err := s.PEPItems(t.Context(), owner, node, ids, 0)
	if err != nil {
		t.Fatalf("PEPItems(%s, %s, %q): %v", owner, node, ids, err)
	}
	checkPEPItemIDs(t, fmt.Sprintf("PEPItems(%s, %s, %q)", owner, node, ids), got, wantIDs)
}

func checkPEPItemIDs(t *testing.T, op string, got []storage.PEPItem, wantIDs []string) {
	t.Helper()
	ids := make([]string, len(got))
	for i, it := range got {
		ids[i] = it.ID
		// Every item that publishPEP stored names itself.
		if p := string(it.Payload); strings.HasPrefix(p, "<x xmlns='urn:test'>") && p != "<x xmlns='urn:test'>"+it.ID+"</x>" {
			t.Errorf("%s: item %s has the payload %q of another", op, it.ID, p)
		}
	}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("%s = %q, want %q", op, ids, wantIDs)
	}
}

// checkPEPItem checks that got is want: every field, Published to the
// instant.
func checkPEPItem(t *testing.T, got, want storage.PEPItem) {
	t.Helper()
	if got.ID != want.ID || got.Publisher != want.Publisher || !bytes.Equal(got.Payload, want.Payload) ||
		!got.Published.Equal(want.Published) {
		t.Errorf("item = %+v, want %+v", got, want)
	}
}

// checkLastPEPItems checks that LastPEPItems(owner) has the items of ids
// by node, and no other node.
func checkLastPEPItems(t *testing.T, s storage.Store, owner string, want map[string]string) {
	t.Helper()
	last, err := s.LastPEPItems(t.Context(), owner)
	if err != nil {
		t.Fatalf("LastPEPItems(%s): %v", owner, err)
	}
	got := map[string]string{}
	for node, it := range last {
		got[node] = it.ID
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LastPEPItems(%s) = %v, want %v", owner, got, want)
	}
}

// checkPEPNodes checks that owner's nodes are want, in that order, each as
// PEPNode.Normal makes it.
func checkPEPNodes(t *testing.T, s storage.Store, owner string, want []storage.PEPNode) {
	t.Helper()
	got, err := s.PEPNodes(t.Context(), owner)
	if err != nil {
		t.Fatalf("PEPNodes(%s): %v", owner, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	normal := make([]storage.PEPNode, len(want))
	for i, n := range want {
		normal[i] = n.Normal()
	}
	if !reflect.DeepEqual(got, normal) {
		t.Fatalf("PEPNodes(%s) =\n  %+v\nwant\n  %+v", owner, got, normal)
	}
}

// checkPEPNode checks owner's node want.Name against want.
func checkPEPNode(t *testing.T, s storage.Store, owner string, want storage.PEPNode) {
	t.Helper()
	nodes, err := s.PEPNodes(t.Context(), owner)
	if err != nil {
		t.Fatalf("PEPNodes(%s): %v", owner, err)
	}
	i := slices.IndexFunc(nodes, func(n storage.PEPNode) bool { return n.Name == want.Name })
	if i < 0 {
		t.Fatalf("PEPNodes(%s) has no node %s", owner, want.Name)
	}
	if !reflect.DeepEqual(nodes[i], want.Normal()) {
		t.Fatalf("node %s of %s =\n  %+v\nwant\n  %+v", want.Name, owner, nodes[i], want.Normal())
	}
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// PEPOneInstant checks that items published to one node in the same
// microsecond keep the order of their publishes, which the conformance
// suite can only hope for a fast store to produce: s must give every item
// Published at, by a clock its backend's test sets.
func PEPOneInstant(t *testing.T, s storage.Store, at time.Time) {
	t.Helper()
	const alice, node = "alice@example.com", "urn:xmpp:avatar:metadata"
	if err := s.CreatePEPNode(t.Context(), alice, storage.PEPNode{Name: node}, 0); err != nil {
		t.Fatal(err)
	}
	// The ids run against the order, so that neither they nor the time
	// can stand in for it.
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("%02d", 19-i))
	}
	publishPEP(t, s, alice, node, 0, ids[:10]...)
	publishPEP(t, s, alice, node, 0, "15") // republished: the newest now
	publishPEP(t, s, alice, node, 0, ids[10:]...)
	publishPEP(t, s, alice, node, 12, "18")
	want := append([]string{"18"}, reversed(ids[10:])...)
	want = append(want, "15") // 12 of them
	items := checkPEPItems(t, s, alice, node, want...)
	for _, it := range items {
		if !it.Published.Equal(at) {
			t.Fatalf("item %s Published %v, want the frozen clock's %v", it.ID, it.Published, at)
		}
	}
	checkPEPItemsMax(t, s, alice, node, 3, want[:3]...)
	checkLastPEPItems(t, s, alice, map[string]string{node: "18"})
}

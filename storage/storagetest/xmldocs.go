package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func runXMLDocs(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"
	const vcard, bookmarks = "vcard-temp", "{storage:bookmarks}storage"
	card := []byte(`<vCard xmlns="vcard-temp"><FN>Alice</FN><NICKNAME>al &amp; é</NICKNAME></vCard>`)
	marks := []byte(`<storage xmlns="storage:bookmarks"><conference jid="r@muc.example.com" autojoin="true"/></storage>`)

	t.Run("PutGetReplaceDelete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		_, err := s.XMLDoc(ctx, alice, vcard)
		wantErr(t, "XMLDoc of nothing", err, storage.ErrNotFound)
		if err := s.PutXMLDoc(ctx, alice, vcard, card, storage.XMLDocLimits{}); err != nil {
			t.Fatalf("PutXMLDoc: %v", err)
		}
		if err := s.PutXMLDoc(ctx, alice, bookmarks, marks, storage.XMLDocLimits{}); err != nil {
			t.Fatalf("PutXMLDoc(bookmarks): %v", err)
		}
		checkXMLDoc(t, s, alice, vcard, card)
		checkXMLDoc(t, s, alice, bookmarks, marks)
		// Keys and owners are separate.
		_, err = s.XMLDoc(ctx, bob, vcard)
		wantErr(t, "XMLDoc of another owner", err, storage.ErrNotFound)
		_, err = s.XMLDoc(ctx, alice, "{storage:rosternotes}storage")
		wantErr(t, "XMLDoc of another key", err, storage.ErrNotFound)

		// A put replaces, the other key is untouched.
		short := []byte(`<vCard xmlns="vcard-temp"/>`)
		if err := s.PutXMLDoc(ctx, alice, vcard, short, storage.XMLDocLimits{}); err != nil {
			t.Fatalf("second PutXMLDoc: %v", err)
		}
		checkXMLDoc(t, s, alice, vcard, short)
		checkXMLDoc(t, s, alice, bookmarks, marks)

		if err := s.DeleteXMLDoc(ctx, alice, vcard); err != nil {
			t.Fatalf("DeleteXMLDoc: %v", err)
		}
		_, err = s.XMLDoc(ctx, alice, vcard)
		wantErr(t, "XMLDoc after DeleteXMLDoc", err, storage.ErrNotFound)
		if err := s.DeleteXMLDoc(ctx, alice, vcard); err != nil {
			t.Fatalf("DeleteXMLDoc of nothing: %v, want nil", err)
		}
		checkXMLDoc(t, s, alice, bookmarks, marks)
	})

	t.Run("Limit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.PutXMLDoc(ctx, alice, vcard, card, storage.XMLDocLimits{MaxBytes: len(card)}); err != nil {
			t.Fatalf("PutXMLDoc of exactly the limit: %v", err)
		}
		big := append(bytes.Clone(card), ' ')
		err := s.PutXMLDoc(ctx, alice, vcard, big, storage.XMLDocLimits{MaxBytes: len(card)})
		wantErr(t, "PutXMLDoc past the limit", err, storage.ErrLimit)
		// The refused put changed nothing.
		checkXMLDoc(t, s, alice, vcard, card)
	})

	t.Run("CountLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		lim := storage.XMLDocLimits{MaxDocs: 2}
		for _, k := range []string{vcard, bookmarks} {
			if err := s.PutXMLDoc(ctx, alice, k, card, lim); err != nil {
				t.Fatalf("PutXMLDoc(%s) within the count: %v", k, err)
			}
		}
		err := s.PutXMLDoc(ctx, alice, "{urn:x}third", card, lim)
		wantErr(t, "PutXMLDoc of a third key", err, storage.ErrLimit)
		if _, err := s.XMLDoc(ctx, alice, "{urn:x}third"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the refused document was stored: err = %v", err)
		}
		// Replacing never fails for the count, even past a lowered limit.
		if err := s.PutXMLDoc(ctx, alice, bookmarks, marks, storage.XMLDocLimits{MaxDocs: 1}); err != nil {
			t.Fatalf("PutXMLDoc replacing past the count: %v", err)
		}
		checkXMLDoc(t, s, alice, bookmarks, marks)
		// Another owner has a count of its own.
		if err := s.PutXMLDoc(ctx, bob, "{urn:x}third", card, lim); err != nil {
			t.Fatalf("PutXMLDoc for bob: %v", err)
		}
		// A deleted document frees its place.
		if err := s.DeleteXMLDoc(ctx, alice, vcard); err != nil {
			t.Fatal(err)
		}
		if err := s.PutXMLDoc(ctx, alice, "{urn:x}third", card, lim); err != nil {
			t.Fatalf("PutXMLDoc after a delete: %v", err)
		}
	})

	t.Run("ConcurrentCountLimit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		stores := handles(t, s, reopen)
		errs := concurrently(8, func(i int) error {
			return stores[i%len(stores)].PutXMLDoc(ctx, alice, fmt.Sprintf("{urn:x}k%d", i), card, storage.XMLDocLimits{MaxDocs: 3})
		})
		checkLimited(t, "PutXMLDoc", errs, 3)
		stored := 0
		for i := range 8 {
			if _, err := s.XMLDoc(ctx, alice, fmt.Sprintf("{urn:x}k%d", i)); err == nil {
				stored++
			}
		}
		if stored != 3 {
			t.Errorf("%d documents stored after concurrent PutXMLDoc calls; the limit is 3", stored)
		}
	})

	t.Run("DeleteUser", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, alice, creds(1)); err != nil {
			t.Fatal(err)
		}
		for _, o := range []string{alice, bob} {
			if err := s.PutXMLDoc(ctx, o, vcard, card, storage.XMLDocLimits{}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutXMLDoc(ctx, o, bookmarks, marks, storage.XMLDocLimits{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		for _, k := range []string{vcard, bookmarks} {
			if _, err := s.XMLDoc(ctx, alice, k); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("XMLDoc(%s) after DeleteUser: err = %v, want ErrNotFound", k, err)
			}
		}
		checkXMLDoc(t, s, bob, vcard, card)
		checkXMLDoc(t, s, bob, bookmarks, marks)
	})

	if reopen != nil {
		t.Run("Reopen", func(t *testing.T) {
			s, ctx := open(t), t.Context()
			if err := s.PutXMLDoc(ctx, alice, bookmarks, marks, storage.XMLDocLimits{}); err != nil {
				t.Fatal(err)
			}
			checkXMLDoc(t, reopen(t, s), alice, bookmarks, marks)
		})
	}
}

// checkXMLDoc checks that owner's document under key is want, byte for byte.
func checkXMLDoc(t *testing.T, s storage.Store, owner, key string, want []byte) {
	t.Helper()
	got, err := s.XMLDoc(t.Context(), owner, key)
	if err != nil {
		t.Fatalf("XMLDoc(%s, %s): %v", owner, key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("XMLDoc(%s, %s) = %q, want %q", owner, key, got, want)
	}
}

package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
)

func runUploads(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice, bob = "alice@example.com", "bob@example.com"
	// A time with microseconds, which both backends keep.
	now := time.Date(2025, 3, 4, 5, 6, 7, 891011000, time.UTC)
	slot := func(token, owner string, size int64, expires time.Time) storage.UploadSlot {
		return storage.UploadSlot{Token: token, Owner: owner, Filename: "photo " + token + ".jpg", Size: size,
			ContentType: "image/jpeg", Created: now.Add(-time.Minute), Expires: expires}
	}

	t.Run("PutGet", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		want := slot("t1", alice, 1234, now.Add(5*time.Minute))
		want.Filename = "é <&> x.jpg"
		if err := s.PutUploadSlot(ctx, want, 0, now); err != nil {
			t.Fatalf("PutUploadSlot: %v", err)
		}
		got, err := s.UploadSlot(ctx, "t1")
		if err != nil {
			t.Fatalf("UploadSlot: %v", err)
		}
		checkSlot(t, got, want)
		_, err = s.UploadSlot(ctx, "t2")
		wantErr(t, "UploadSlot of an unknown token", err, storage.ErrNotFound)
		err = s.PutUploadSlot(ctx, slot("t1", bob, 1, now.Add(time.Minute)), 0, now)
		wantErr(t, "PutUploadSlot with a token in use", err, storage.ErrExists)
		if got, _ := s.UploadSlot(ctx, "t1"); got.Owner != alice {
			t.Errorf("the failed put changed the slot's owner to %q", got.Owner)
		}
	})

	t.Run("Quota", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		put := func(u storage.UploadSlot, quota int64) error { return s.PutUploadSlot(ctx, u, quota, now) }
		if err := put(slot("a", alice, 600, now.Add(time.Minute)), 1000); err != nil {
			t.Fatalf("first slot: %v", err)
		}
		// An unused slot that has expired no longer counts.
		if err := put(slot("old", alice, 900, now.Add(-time.Second)), 0); err != nil {
			t.Fatalf("expired slot: %v", err)
		}
		wantBytes(t, s, alice, now, 600)
		err := put(slot("b", alice, 401, now.Add(time.Minute)), 1000)
		wantErr(t, "PutUploadSlot over the quota", err, storage.ErrLimit)
		if _, err := s.UploadSlot(ctx, "b"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a refused slot was stored: UploadSlot err = %v", err)
		}
		// Exactly up to the quota is allowed; other accounts count apart.
		if err := put(slot("b", alice, 400, now.Add(time.Minute)), 1000); err != nil {
			t.Fatalf("slot filling the quota: %v", err)
		}
		if err := put(slot("c", bob, 1000, now.Add(time.Minute)), 1000); err != nil {
			t.Fatalf("bob's slot: %v", err)
		}
		// Once uploaded, a slot counts for good, even past its deadline.
		if err := s.MarkUploaded(ctx, "a", now); err != nil {
			t.Fatalf("MarkUploaded: %v", err)
		}
		later := now.Add(time.Hour)
		wantBytes(t, s, alice, later, 600)
		if err := s.PutUploadSlot(ctx, slot("d", alice, 401, later.Add(time.Minute)), 1000, later); !errors.Is(err, storage.ErrLimit) {
			t.Errorf("PutUploadSlot over the quota with an uploaded file: err = %v, want ErrLimit", err)
		}
		if err := s.PutUploadSlot(ctx, slot("d", alice, 400, later.Add(time.Minute)), 1000, later); err != nil {
			t.Errorf("PutUploadSlot within the quota once the unused slot expired: %v", err)
		}
	})

	t.Run("QuotaConcurrent", func(t *testing.T) {
		// Ten requests at once for 100 bytes each under a quota of 500:
		// exactly five get a slot.
		s, ctx := open(t), t.Context()
		errs := concurrently(10, func(i int) error {
			return s.PutUploadSlot(ctx, slot(fmt.Sprint("q", i), alice, 100, now.Add(time.Minute)), 500, now)
		})
		checkLimited(t, "PutUploadSlot", errs, 5)
		wantBytes(t, s, alice, now, 500)
	})

	t.Run("MarkUploaded", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, u := range []storage.UploadSlot{slot("live", alice, 5, now.Add(time.Minute)), slot("late", alice, 5, now)} {
			if err := s.PutUploadSlot(ctx, u, 0, now); err != nil {
				t.Fatalf("PutUploadSlot: %v", err)
			}
		}
		wantErr(t, "MarkUploaded of an unknown slot", s.MarkUploaded(ctx, "none", now), storage.ErrNotFound)
		wantErr(t, "MarkUploaded at the deadline", s.MarkUploaded(ctx, "late", now), storage.ErrNotFound)
		// Several PUTs at once: one wins.
		errs := concurrently(8, func(int) error { return s.MarkUploaded(ctx, "live", now.Add(time.Second)) })
		checkWinners(t, "MarkUploaded", errs, 1, storage.ErrNotFound)
		got, err := s.UploadSlot(ctx, "live")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Uploaded.Equal(now.Add(time.Second)) {
			t.Errorf("Uploaded = %v, want %v", got.Uploaded, now.Add(time.Second))
		}
		if got, _ := s.UploadSlot(ctx, "late"); !got.Uploaded.IsZero() {
			t.Errorf("the late slot is marked uploaded at %v", got.Uploaded)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		slots := []storage.UploadSlot{
			slot("e-unused-expired", alice, 1, now.Add(-time.Second)),
			slot("b-unused-live", alice, 1, now.Add(time.Minute)),
			slot("c-old-file", bob, 1, now.Add(time.Minute)),
			slot("a-new-file", bob, 1, now.Add(time.Minute)),
			slot("d-unused-expired", bob, 1, now),
		}
		slots[2].Uploaded = now.Add(-2 * time.Hour)
		slots[3].Uploaded = now.Add(-time.Minute)
		for _, u := range slots {
			if err := s.PutUploadSlot(ctx, u, 0, now.Add(-3*time.Hour)); err != nil {
				t.Fatalf("PutUploadSlot(%s): %v", u.Token, err)
			}
		}
		check := func(uploadedBefore time.Time, max int, want ...string) {
			t.Helper()
			got, err := s.ExpiredUploads(ctx, now, uploadedBefore, max)
			if err != nil {
				t.Fatalf("ExpiredUploads: %v", err)
			}
			var tokens []string
			for _, u := range got {
				tokens = append(tokens, u.Token)
			}
			if fmt.Sprint(tokens) != fmt.Sprint(want) {
				t.Errorf("ExpiredUploads(before %v, max %d) = %v, want %v", uploadedBefore, max, tokens, want)
			}
		}
		check(time.Time{}, 10, "d-unused-expired", "e-unused-expired")
		check(now.Add(-time.Hour), 10, "c-old-file", "d-unused-expired", "e-unused-expired")
		check(now, 10, "a-new-file", "c-old-file", "d-unused-expired", "e-unused-expired")
		check(now, 2, "a-new-file", "c-old-file")
		if err := s.DeleteUploadSlot(ctx, "c-old-file"); err != nil {
			t.Fatalf("DeleteUploadSlot: %v", err)
		}
		if err := s.DeleteUploadSlot(ctx, "c-old-file"); err != nil {
			t.Errorf("DeleteUploadSlot of a slot already gone: %v", err)
		}
		check(now.Add(-time.Hour), 10, "d-unused-expired", "e-unused-expired")
	})

	t.Run("DeleteUserRemovesSlots", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, alice, creds(1)); err != nil {
			t.Fatal(err)
		}
		for _, u := range []storage.UploadSlot{slot("a1", alice, 10, now.Add(time.Minute)), slot("b1", bob, 10, now.Add(time.Minute))} {
			if err := s.PutUploadSlot(ctx, u, 0, now); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUser(ctx, alice); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.UploadSlot(ctx, "a1")
		wantErr(t, "UploadSlot of a deleted account's slot", err, storage.ErrNotFound)
		wantBytes(t, s, alice, now, 0)
		if _, err := s.UploadSlot(ctx, "b1"); err != nil {
			t.Errorf("another account's slot went with the deleted one: %v", err)
		}
	})
}

func wantBytes(t *testing.T, s storage.Store, owner string, now time.Time, want int64) {
	t.Helper()
	got, err := s.UploadBytes(t.Context(), owner, now)
	if err != nil {
		t.Fatalf("UploadBytes: %v", err)
	}
	if got != want {
		t.Errorf("UploadBytes(%s) = %d, want %d", owner, got, want)
	}
}

func checkSlot(t *testing.T, got, want storage.UploadSlot) {
	t.Helper()
	if got.Token != want.Token || got.Owner != want.Owner || got.Filename != want.Filename || got.Size != want.Size ||
		got.ContentType != want.ContentType || !got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) ||
		!got.Uploaded.Equal(want.Uploaded) {
		t.Errorf("slot = %+v, want %+v", got, want)
	}
}

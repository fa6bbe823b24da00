package storage

import (
	"context"
	"time"
)

// An UploadSlot is a place an account was given to upload one file to over
// HTTP (XEP-0363): the file's name, size and type as the client announced
// them, and until when the PUT is accepted.
type UploadSlot struct {
	// Token is the slot's random path component, its key.
	Token string
	// Owner is the bare JID of the account that asked for it.
	Owner    string
	Filename string
	// Size is the exact size in bytes the PUT must have.
	Size int64
	// ContentType is what the client announced; empty when it gave none.
	ContentType string
	// Created is when the slot was given; Expires the PUT's deadline.
	Created, Expires time.Time
	// Uploaded is when the file was stored; zero while the slot is unused.
	Uploaded time.Time
}

// Uploads stores the slots of the HTTP upload service (XEP-0363) and,
// through them, how many bytes each account has stored. The caller passes
// the time, so that expiry does not depend on the database's clock.
type Uploads interface {
	// PutUploadSlot adds s. With quota > 0 it fails with ErrLimit when the
	// bytes of Owner's uploaded slots and of its unused slots not yet
	// expired at now, with s.Size, would exceed quota; a slot with the same
	// Token fails with ErrExists.
	PutUploadSlot(ctx context.Context, s UploadSlot, quota int64, now time.Time) error
	// UploadSlot returns the slot with token; ErrNotFound if there is none.
	UploadSlot(ctx context.Context, token string) (UploadSlot, error)
	// MarkUploaded sets the slot's Uploaded to now, only if it is unused
	// and has not expired at now; else ErrNotFound. Of two callers at
	// once, one wins.
	MarkUploaded(ctx context.Context, token string, now time.Time) error
	// UploadBytes is what PutUploadSlot counts against the quota: the
	// sizes of owner's uploaded slots and of its unused slots not expired
	// at now.
	UploadBytes(ctx context.Context, owner string, now time.Time) (int64, error)
	// ExpiredUploads returns, ordered by Token, at most max (> 0) slots
	// that are unused and expired at now, or were uploaded before
	// uploadedBefore (a zero uploadedBefore matches no uploaded slot).
	ExpiredUploads(ctx context.Context, now, uploadedBefore time.Time, max int) ([]UploadSlot, error)
	// DeleteUploadSlot removes the slot with token; none is not an error.
	DeleteUploadSlot(ctx context.Context, token string) error
}

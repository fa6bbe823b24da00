package upload

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// sweepBatch is how many expired slots one query returns, and
// sweepBatches how many batches one sweep takes at most: the rest waits
// for the next.
const (
	sweepBatch   = 500
	sweepBatches = 100
)

// sweeper deletes expired files and slots every SweepInterval until the
// server shuts down.
func (s *Service) sweeper(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.SweepInterval)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-t.C:
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Sweep deletes, once, the files older than FileLifetime and the slots
// whose PUT never came, then the files whose slot is gone (an account was
// deleted) and uploads abandoned half-way. It returns how many files it
// deleted.
func (s *Service) Sweep(ctx context.Context) int {
	now := s.now()
	var before time.Time
	if s.FileLifetime > 0 {
		before = now.Add(-s.FileLifetime)
	}
	deleted := 0
	for range sweepBatches {
		slots, err := s.Store.ExpiredUploads(ctx, now, before, sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("listing expired uploads", "err", err)
			}
			return deleted
		}
		for _, u := range slots {
			if !u.Uploaded.IsZero() {
				if err := os.Remove(s.file(u.Token)); err == nil {
					deleted++
				} else if !errors.Is(err, os.ErrNotExist) {
					s.log.Warn("deleting an expired upload", "err", err)
					continue // the slot stays, so that the next sweep tries again
				}
			}
			if err := s.Store.DeleteUploadSlot(ctx, u.Token); err != nil {
				s.log.Error("deleting an expired upload slot", "err", err)
				return deleted
			}
		}
		if len(slots) < sweepBatch {
			break
		}
	}
	return deleted + s.sweepOrphans(ctx, now)
}

// sweepOrphans deletes the files in Dir that no slot names any more and
// the temporary files of PUTs that have had longer than any PUT may take.
func (s *Service) sweepOrphans(ctx context.Context, now time.Time) int {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("reading the upload folder", "dir", s.Dir, "err", err)
		}
		return 0
	}
	deleted := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			break
		}
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > s.SlotLifetime+24*time.Hour {
				os.Remove(s.file(name))
			}
		case validToken(name):
			_, err := s.Store.UploadSlot(ctx, name)
			if errors.Is(err, storage.ErrNotFound) {
				if os.Remove(s.file(name)) == nil {
					deleted++
				}
			}
		}
	}
	return deleted
}

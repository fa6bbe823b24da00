package storagetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// Run runs the conformance suite as subtests of t. open must return a fresh,
// empty store for each call and arrange (with t.Cleanup) to close it; it is
// called once per subtest with that subtest's t.
//
// reopen must open a second store on the database of s, a store that open
// returned, as another process (xmppctl beside the server) would, and
// arrange to close it; the cases that need one are skipped if reopen is nil.
//
// Persistence across Close and reopen depends on how a backend is opened, so
// each backend tests it in its own package.
func Run(t *testing.T, open func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	t.Run("Users", func(t *testing.T) { runUsers(t, open) })
	t.Run("Rosters", func(t *testing.T) { runRosters(t, open) })
	t.Run("Offline", func(t *testing.T) { runOffline(t, open) })
	t.Run("Groups", func(t *testing.T) { runGroups(t, open, reopen) })
	t.Run("Rooms", func(t *testing.T) { runRooms(t, open, reopen) })
	t.Run("Secrets", func(t *testing.T) { runSecrets(t, open, reopen) })
	t.Run("Archive", func(t *testing.T) { runArchive(t, open, reopen) })
	t.Run("Push", func(t *testing.T) { runPush(t, open, reopen) })
	t.Run("Blocking", func(t *testing.T) { runBlocking(t, open, reopen) })
	t.Run("Invites", func(t *testing.T) { runInvites(t, open) })
	t.Run("Uploads", func(t *testing.T) { runUploads(t, open) })
	t.Run("XMLDocs", func(t *testing.T) { runXMLDocs(t, open, reopen) })
	t.Run("PEP", func(t *testing.T) { runPEP(t, open, reopen) })
	t.Run("APITokens", func(t *testing.T) { runAPITokens(t, open) })
}

func runUsers(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("CreateThenCredentials", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		want := creds(1)
		if err := s.CreateUser(ctx, "alice@example.com", want); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		got, err := s.Credentials(ctx, "alice@example.com")
		if err != nil {
			t.Fatalf("Credentials: %v", err)
		}
		checkCreds(t, got, want)
	})

	t.Run("CredentialsMissing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		_, err := s.Credentials(ctx, "nobody@example.com")
		wantErr(t, "Credentials", err, storage.ErrNotFound)
	})

	t.Run("CreateDuplicate", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, "alice@example.com", creds(1)); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		err := s.CreateUser(ctx, "alice@example.com", creds(2))
		wantErr(t, "second CreateUser", err, storage.ErrExists)
		got, err := s.Credentials(ctx, "alice@example.com")
		if err != nil {
			t.Fatalf("Credentials: %v", err)
		}
		checkCreds(t, got, creds(1)) // the failed create changed nothing
	})

	t.Run("SetCredentialsMissing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		err := s.SetCredentials(ctx, "nobody@example.com", creds(1))
		wantErr(t, "SetCredentials", err, storage.ErrNotFound)
		if _, err := s.Credentials(ctx, "nobody@example.com"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetCredentials on a missing account created it: Credentials err = %v", err)
		}
	})

	t.Run("SetCredentialsReplaces", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for _, jid := range []string{"alice@example.com", "bob@example.com"} {
			if err := s.CreateUser(ctx, jid, creds(1)); err != nil {
				t.Fatalf("CreateUser(%s): %v", jid, err)
			}
		}
		if err := s.SetCredentials(ctx, "alice@example.com", creds(2)); err != nil {
			t.Fatalf("SetCredentials: %v", err)
		}
		got, err := s.Credentials(ctx, "alice@example.com")
		if err != nil {
			t.Fatalf("Credentials: %v", err)
		}
		checkCreds(t, got, creds(2))
		got, err = s.Credentials(ctx, "bob@example.com")
		if err != nil {
			t.Fatalf("Credentials(bob): %v", err)
		}
		checkCreds(t, got, creds(1)) // only alice's row changed
	})

	t.Run("Delete", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		if err := s.CreateUser(ctx, "alice@example.com", creds(1)); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		if err := s.DeleteUser(ctx, "alice@example.com"); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		_, err := s.Credentials(ctx, "alice@example.com")
		wantErr(t, "Credentials after DeleteUser", err, storage.ErrNotFound)
		err = s.DeleteUser(ctx, "alice@example.com")
		wantErr(t, "second DeleteUser", err, storage.ErrNotFound)
		// The JID is free again.
		if err := s.CreateUser(ctx, "alice@example.com", creds(2)); err != nil {
			t.Fatalf("CreateUser after DeleteUser: %v", err)
		}
	})

	t.Run("DeleteMissing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		err := s.DeleteUser(ctx, "nobody@example.com")
		wantErr(t, "DeleteUser", err, storage.ErrNotFound)
	})

	t.Run("ListUsers", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		got, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatalf("ListUsers on an empty store: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("ListUsers on an empty store = %q, want none", got)
		}
		// Chosen so that byte order differs from a locale's collation, which
		// ignores punctuation and folds accents.
		jids := []string{
			"zoe@example.com", "ab@example.com", "a.c@example.com", "a@example.com",
			"b@example.com", "é@example.com", "e@example.org", "a@conference.example.com",
		}
		for _, jid := range jids {
			if err := s.CreateUser(ctx, jid, creds(1)); err != nil {
				t.Fatalf("CreateUser(%s): %v", jid, err)
			}
		}
		if err := s.DeleteUser(ctx, "b@example.com"); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		want := slices.Sorted(slices.Values(slices.DeleteFunc(jids, func(j string) bool { return j == "b@example.com" })))
		got, err = s.ListUsers(ctx)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListUsers =\n  %q\nwant (byte order)\n  %q", got, want)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		errs := concurrently(8, func(i int) error {
			return s.CreateUser(ctx, "alice@example.com", creds(byte(i)))
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("CreateUser succeeded in goroutines %d and %d", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("goroutine %d: CreateUser: %v, want nil or ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no CreateUser succeeded")
		}
		got, err := s.Credentials(ctx, "alice@example.com")
		if err != nil {
			t.Fatalf("Credentials: %v", err)
		}
		checkCreds(t, got, creds(byte(winner)))
	})
}

// creds returns credentials whose every field depends on seed, with the
// lengths real SCRAM keys have and bytes (0x00, 0xff) that a text round trip
// would damage.
func creds(seed byte) storage.Credentials {
	b := func(tag byte, n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = seed*31 + tag*7 + byte(i)*13
		}
		p[0], p[n-1] = 0x00, 0xff
		return p
	}
	return storage.Credentials{
		Salt:       b(1, 16),
		Iterations: 4096 + int(seed),
		SHA1:       storage.SCRAMKeys{StoredKey: b(2, 20), ServerKey: b(3, 20)},
		SHA256:     storage.SCRAMKeys{StoredKey: b(4, 32), ServerKey: b(5, 32)},
	}
}

func checkCreds(t *testing.T, got, want storage.Credentials) {
	t.Helper()
	for _, f := range []struct {
		name      string
		got, want []byte
	}{
		{"Salt", got.Salt, want.Salt},
		{"SHA1.StoredKey", got.SHA1.StoredKey, want.SHA1.StoredKey},
		{"SHA1.ServerKey", got.SHA1.ServerKey, want.SHA1.ServerKey},
		{"SHA256.StoredKey", got.SHA256.StoredKey, want.SHA256.StoredKey},
		{"SHA256.ServerKey", got.SHA256.ServerKey, want.SHA256.ServerKey},
	} {
		if !bytes.Equal(f.got, f.want) {
			t.Errorf("%s = %x, want %x", f.name, f.got, f.want)
		}
	}
	if got.Iterations != want.Iterations {
		t.Errorf("Iterations = %d, want %d", got.Iterations, want.Iterations)
	}
}

// concurrently calls f(0) to f(n-1), each in a goroutine of its own, all
// released at once so that they race, and returns their errors by i.
// handles returns s and, when reopen is given, a second store on the same
// database, as another process would have: for cases where concurrent
// writers must respect a limit whichever handle they use.
func handles(t *testing.T, s storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) []storage.Store {
	t.Helper()
	if reopen == nil {
		return []storage.Store{s}
	}
	return []storage.Store{s, reopen(t, s)}
}

func concurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func wantErr(t *testing.T, op string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: err = %v, want %v", op, got, want)
	}
}

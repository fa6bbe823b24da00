package blocking_test

import (
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/blocking"
	"github.com/xmppd/xmppd/xmpp"
)

// Another node's changes arrive over the cluster bus as blocking-changed
// operations: each is applied and pushed at once, then the list is read
// again from storage, so that two changes made at once on two nodes,
// arriving here in the other order than storage took them, leave the
// list that storage holds.
func TestChangedElsewhere(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj := s.AddUser(t, "alice", "pw")
	alice := online(t, s, aj, "phone")
	if got := blocklist(t, alice); len(got) != 0 {
		t.Fatalf("a new account's list: %v", got)
	}
	receive := func(what, j string) {
		t.Helper()
		raw := `<blocking-changed xmlns="` + xmpp.NSCluster + `" owner="` + aj.String() + `">` +
			`<` + what + ` xmlns="` + blocking.NS + `">` + items(j) + `</` + what + `></blocking-changed>`
		if err := s.Server.Receive(t.Context(), []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}

	// Another node blocks mallory: stored there, applied here, and pushed.
	if _, err := s.Server.Store.Block(t.Context(), aj.String(), []string{"mallory@example.org"}, 0); err != nil {
		t.Fatal(err)
	}
	receive("block", "mallory@example.org")
	expectPush(t, alice, "block", "mallory@example.org")
	if got := blocklist(t, alice); strings.Join(got, " ") != "mallory@example.org" {
		t.Fatalf("after another node's block: %v", got)
	}

	// Node B unblocked eve and node C then blocked her, as storage has
	// it; C's operation comes here first.
	if _, err := s.Server.Store.Block(t.Context(), aj.String(), []string{"eve@example.org"}, 0); err != nil {
		t.Fatal(err)
	}
	receive("block", "eve@example.org")
	expectPush(t, alice, "block", "eve@example.org")
	receive("unblock", "eve@example.org")
	expectPush(t, alice, "unblock", "eve@example.org")
	deadline := time.Now().Add(testenv.Timeout)
	for {
		got := strings.Join(blocklist(t, alice), " ")
		if got == "eve@example.org mallory@example.org" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list is %q, storage holds eve and mallory", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

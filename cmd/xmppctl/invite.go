package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/storage"
)

// defaultInviteTTL is how long an invitation is good for by default.
const defaultInviteTTL = 7 * 24 * time.Hour

// invite runs "invite create": it stores the hash of a new token and
// prints the token, which only the invitee should see.
func invite(ctx context.Context, store storage.Invites, args []string, stdout io.Writer) (int, error) {
	if args[0] != "create" {
		return 2, fmt.Errorf("unknown invite command %q\n%s", args[0], usage)
	}
	fs := flag.NewFlagSet("invite create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ttl := fs.Duration("ttl", defaultInviteTTL, "how long the invitation is good for")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return 2, errors.New("usage: xmppctl invite create [-ttl DURATION]\n" + usage)
	}
	if *ttl <= 0 {
		*ttl = defaultInviteTTL
	}
	token, hash := register.NewToken()
	expires := time.Now().Add(*ttl)
	if err := store.CreateInvite(ctx, hash, expires); err != nil {
		return 1, err
	}
	fmt.Fprintln(stdout, token)
	return 0, nil
}

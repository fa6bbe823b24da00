package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// room runs the room commands: persistent multi-user chat rooms of the two
// kinds docs/muc.md describes. A running server finds a room created here
// the first time someone addresses it.
func room(ctx context.Context, store storage.Rooms, domain, service string, args []string, stdout io.Writer) (int, error) {
	cmd, rest := args[0], args[1:]
	wrongArgs := errors.New("wrong number of arguments\n" + usage)
	switch cmd {
	case "create":
		return roomCreate(ctx, store, domain, service, rest, stdout)
	case "list":
		if len(rest) != 0 {
			return 2, wrongArgs
		}
		rooms, err := store.ListRooms(ctx)
		if err != nil {
			return 1, err
		}
		for _, r := range rooms {
			kind := "chat"
			if r.Config.MembersOnly {
				kind = "group"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", r.JID, kind, r.Config.Name)
		}
		return 0, nil
	case "del":
		if len(rest) != 1 {
			return 2, wrongArgs
		}
		rj, err := roomJID(rest[0], service)
		if err != nil {
			return 1, err
		}
		if err := store.DeleteRoom(ctx, rj); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return 1, fmt.Errorf("room %s does not exist", rj)
			}
			return 1, err
		}
		fmt.Fprintf(stdout, "deleted room %s (a running server forgets it at its next start)\n", rj)
		return 0, nil
	}
	return 2, fmt.Errorf("unknown room command %q\n%s", cmd, usage)
}

func roomCreate(ctx context.Context, store storage.Rooms, domain, service string, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("room create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", "group", "group or chat")
	name := fs.String("name", "", "the room's name")
	owner := fs.String("owner", "", "the owner's JID")
	max := fs.Int("max", 0, "a chat room's occupant limit")
	var members listFlag
	fs.Var(&members, "member", "a member's JID (repeat for more)")
	if len(args) < 1 {
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	id := args[0]
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return 2, fmt.Errorf("bad arguments\n%s", usage)
	}
	rj, err := roomJID(id, service)
	if err != nil {
		return 1, err
	}
	r := storage.Room{JID: rj, Created: time.Now().UTC()}
	switch *kind {
	case "group":
		r.Config = muc.GroupConfig(*name)
	case "chat":
		r.Config = muc.ChatRoomConfig(*name, *max)
	default:
		return 2, fmt.Errorf("-kind must be group or chat\n%s", usage)
	}
	if _, err := store.Room(ctx, rj); err == nil {
		return 1, fmt.Errorf("room %s already exists", rj)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return 1, err
	}
	var affs []storage.Affiliation
	if *owner != "" {
		bare, err := accountJID(*owner, domain)
		if err != nil {
			return 1, err
		}
		affs = append(affs, storage.Affiliation{JID: bare, Affiliation: storage.AffOwner})
	}
	for _, m := range members {
		bare, err := accountJID(m, domain)
		if err != nil {
			return 1, err
		}
		affs = append(affs, storage.Affiliation{JID: bare, Affiliation: storage.AffMember})
	}
	if err := store.SaveRoom(ctx, r); err != nil {
		return 1, err
	}
	for _, a := range affs {
		if err := store.SetAffiliation(ctx, rj, a); err != nil {
			return 1, err
		}
	}
	fmt.Fprintf(stdout, "created %s %s\n", *kind, rj)
	return 0, nil
}

// roomJID makes a room's bare JID from its name or its JID on the service.
func roomJID(s, service string) (string, error) {
	if !strings.Contains(s, "@") {
		s += "@" + service
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid room JID: %w", s, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" || j.Domainpart() != service {
		return "", fmt.Errorf("%q is not a room on %s", s, service)
	}
	return j.String(), nil
}

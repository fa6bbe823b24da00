package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/xmppd/xmppd/storage"
)

// group runs the group commands: the app's teams and projects and their
// members (docs/teams.md).
func group(ctx context.Context, store storage.Groups, domain string, args []string, stdout io.Writer) (int, error) {
	cmd, rest := args[0], args[1:]
	wrongArgs := errors.New("wrong number of arguments\n" + usage)
	switch cmd {
	case "add":
		return groupAdd(ctx, store, rest, stdout)
	case "list":
		if len(rest) != 0 {
			return 2, wrongArgs
		}
		groups, err := store.ListGroups(ctx)
		if err != nil {
			return 1, err
		}
		for _, g := range groups {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", g.ID, g.Kind, g.Name, g.Parent)
		}
		return 0, nil
	case "members":
		if len(rest) != 1 {
			return 2, wrongArgs
		}
		members, err := store.Members(ctx, rest[0])
		if err != nil {
			return 1, explainGroup(err, rest[0])
		}
		for _, m := range members {
			fmt.Fprintln(stdout, m)
		}
		return 0, nil
	case "del":
		if len(rest) != 1 {
			return 2, wrongArgs
		}
		if err := store.DeleteGroup(ctx, rest[0]); err != nil {
			return 1, explainGroup(err, rest[0])
		}
		fmt.Fprintf(stdout, "deleted group %s\n", rest[0])
		return 0, nil
	case "add-member", "remove-member":
		if len(rest) != 2 {
			return 2, wrongArgs
		}
		return groupMember(ctx, store, cmd == "add-member", rest[0], rest[1], domain, stdout)
	}
	return 2, fmt.Errorf("unknown group command %q\n%s", cmd, usage)
}

// groupMember adds an account to a group, or removes it. Any account on the
// served domain may be a member, with or without a password (token sign-in).
func groupMember(ctx context.Context, store storage.Groups, add bool, id, who, domain string, stdout io.Writer) (int, error) {
	bare, err := accountJID(who, domain)
	if err != nil {
		return 1, err
	}
	if add {
		err := store.AddMember(ctx, id, bare)
		if errors.Is(err, storage.ErrExists) {
			return 1, fmt.Errorf("%s is already a member of %s", bare, id)
		}
		if err != nil {
			return 1, explainGroup(err, id)
		}
		fmt.Fprintf(stdout, "added %s to %s\n", bare, id)
		return 0, nil
	}
	err = store.RemoveMember(ctx, id, bare)
	if errors.Is(err, storage.ErrNotFound) {
		return 1, fmt.Errorf("%s is not a member of %s", bare, id)
	}
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stdout, "removed %s from %s\n", bare, id)
	return 0, nil
}

// groupAdd runs "group add ID [-kind team|project] [-name NAME] [-parent TEAM]".
func groupAdd(ctx context.Context, store storage.Groups, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("group add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", storage.KindTeam, "team or project")
	name := fs.String("name", "", "the name rosters show (default: the ID)")
	parent := fs.String("parent", "", "a project's team")
	// Flags may come before or after the ID.
	if err := fs.Parse(args); err != nil {
		return 2, fmt.Errorf("%v\n%s", err, usage)
	}
	if fs.NArg() < 1 {
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	id := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return 2, fmt.Errorf("%v\n%s", err, usage)
	}
	switch {
	case fs.NArg() != 0:
		return 2, errors.New("wrong number of arguments\n" + usage)
	case id == "":
		return 2, errors.New("the group ID is empty\n" + usage)
	case *kind != storage.KindTeam && *kind != storage.KindProject:
		return 2, fmt.Errorf("-kind must be %s or %s\n%s", storage.KindTeam, storage.KindProject, usage)
	case *parent != "" && *kind != storage.KindProject:
		return 2, fmt.Errorf("-parent is only for projects\n%s", usage)
	}
	if *name == "" {
		*name = id
	}
	if *parent != "" {
		// The store checks too; this says it plainly.
		p, err := store.Group(ctx, *parent)
		if errors.Is(err, storage.ErrNotFound) {
			return 1, fmt.Errorf("team %s does not exist", *parent)
		}
		if err != nil {
			return 1, err
		}
		if p.Kind != storage.KindTeam {
			return 1, fmt.Errorf("%s is a %s, not a team", *parent, p.Kind)
		}
	}
	err := store.CreateGroup(ctx, storage.Group{ID: id, Kind: *kind, Name: *name, Parent: *parent})
	switch {
	case errors.Is(err, storage.ErrExists):
		return 1, fmt.Errorf("group %s already exists", id)
	case errors.Is(err, storage.ErrNotFound): // the team went meanwhile
		return 1, fmt.Errorf("team %s does not exist", *parent)
	case err != nil:
		return 1, err
	}
	fmt.Fprintf(stdout, "created %s %s\n", *kind, id)
	return 0, nil
}

// explainGroup turns ErrNotFound about group id into a sentence.
func explainGroup(err error, id string) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("group %s does not exist", id)
	}
	return err
}

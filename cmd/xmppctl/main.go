// Command xmppctl administers xmppd's data (accounts, teams and projects) and
// mints sign-in tokens and admin API tokens; its live commands (session,
// status) go through the running server's admin API. It works on the same configuration file or data
// directory as the server, also while the server runs.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

const usage = `usage: xmppctl [-config FILE] [-data DIR] COMMAND

commands:
  user add JID [PASSWORD]     create an account (password read from stdin if omitted)
  user del JID                delete an account
  user passwd JID [PASSWORD]  set an account's password
  user list                   list accounts
  user import                 create the accounts on stdin, a "JID PASSWORD" line each
  token mint JID [-ttl 1h] [-audience AUD]
                              print a sign-in token for JID (auth.tokens in the config)
  group add ID [-kind team|project] [-name NAME] [-parent TEAM]
                              create a team (the default kind) or a project
  group del ID                delete a group and its memberships
  group list                  list groups: ID, kind, name, parent (tab-separated)
  group members ID            list a group's members
  group add-member ID JID     add an account to a group
  group remove-member ID JID  remove an account from a group
  room create NAME [-kind group|chat] [-name TITLE] [-owner JID] [-member JID]... [-max N]
                              create a persistent room: a members-only group (default)
                              or an open chat room (docs/muc.md)
  room list                   list stored rooms: JID, kind, title (tab-separated)
  room del NAME               delete a stored room
  api-token create NAME       print a new admin API token called NAME (shown once)
  api-token list              list API tokens: name, created, last used (tab-separated)
  api-token revoke NAME       revoke an API token at once
  session list [-api URL] [-token T]
                              list the sessions online on the server, on every node of a
                              cluster (through its admin API): JID, transport, node,
                              since, address (tab-separated)
  session kick JID [-api URL] [-token T]
                              disconnect the session with that full JID, on any node
  status [-api URL] [-token T]
                              the server's version, uptime, nodes and counts (per node
                              in a cluster)
  send [-from JID] [-type chat|normal|headline] [-subject S] TO... BODY
                              send a message; TO is a JID, group:ID (every member of
                              a team or project) or room:NAME (from the room itself)
  event [-store] NAME JSON TO...
                              send the app event NAME with the JSON payload to the
                              online sessions of TO (JIDs, group:ID); -store keeps it
                              for those offline (docs/events.md)
  invite create [-ttl 168h]   print an invitation to create one account by in-band
                              registration (registration.require_invite); -ttl 0 is
                              the default week
`

func main() {
	code, err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xmppctl:", err)
	}
	os.Exit(code)
}

// run returns the exit status: 0 done, 1 failed, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("xmppctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "xmppd's YAML configuration file")
	dataDir := fs.String("data", "", "data directory (overrides the file)")
	if err := fs.Parse(args); err != nil {
		return 2, fmt.Errorf("%v\n%s", err, usage)
	}
	args = fs.Args()
	// status alone takes no subcommand; every other command has one.
	commands := []string{"user", "token", "group", "room", "invite", "api-token", "session", "status", "send", "event"}
	if len(args) == 0 || !slices.Contains(commands, args[0]) || (len(args) < 2 && args[0] != "status") {
		return 2, errors.New("unknown command\n" + usage)
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return 1, err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if args[0] == "token" {
		return token(cfg, args[1:], stdout)
	}
	if args[0] == "session" || args[0] == "status" || args[0] == "send" || args[0] == "event" {
		return live(ctx, cfg, args, stdout)
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return 1, err
	}
	defer store.Close()
	if args[0] == "group" {
		return group(ctx, store, cfg.Domain, args[1:], stdout)
	}
	if args[0] == "invite" {
		return invite(ctx, store, args[1:], stdout)
	}
	if args[0] == "api-token" {
		return apiToken(ctx, store, args[1:], stdout)
	}
	if args[0] == "room" {
		return room(ctx, store, cfg.Domain, cmp.Or(cfg.MUC.Domain, "conference."+cfg.Domain), args[1:], stdout)
	}

	cmd, rest := args[1], args[2:]
	switch cmd {
	case "list":
		users, err := store.ListUsers(ctx)
		if err != nil {
			return 1, err
		}
		for _, u := range users {
			fmt.Fprintln(stdout, u)
		}
		return 0, nil
	case "import":
		if len(rest) != 0 {
			return 2, errors.New("wrong number of arguments\n" + usage)
		}
		return importUsers(ctx, store, cfg.Domain, cfg.Auth.Iterations, stdin, stdout)
	case "add", "passwd", "del":
	default:
		return 2, fmt.Errorf("unknown user command %q\n%s", cmd, usage)
	}
	if len(rest) < 1 || len(rest) > 2 || (cmd == "del" && len(rest) != 1) {
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	bare, err := accountJID(rest[0], cfg.Domain)
	if err != nil {
		return 1, err
	}
	change := accountChange{cfg: cfg, store: store, bare: bare}
	if cmd == "del" {
		done, why, err := change.viaAPI(ctx, stdout)
		if done || err != nil {
			return exitCode(err), err
		}
		if err := store.DeleteUser(ctx, bare); err != nil {
			return 1, explain(err, bare)
		}
		fmt.Fprintf(stdout, "deleted %s (%s: no session was ended)\n", bare, why)
		return 0, nil
	}
	var password string
	if len(rest) == 2 {
		password = rest[1]
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && line == "" {
			return 1, errors.New("no password given")
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if password == "" {
		return 1, errors.New("the password is empty")
	}
	creds, err := xmpp.NewCredentials(password, cfg.Auth.Iterations)
	if err != nil {
		return 1, err
	}
	if cmd == "add" {
		if err := store.CreateUser(ctx, bare, creds); err != nil {
			return 1, explain(err, bare)
		}
		fmt.Fprintf(stdout, "created %s\n", bare)
		return 0, nil
	}
	change.password = password
	done, why, err := change.viaAPI(ctx, stdout)
	if done || err != nil {
		return exitCode(err), err
	}
	if err := store.SetCredentials(ctx, bare, creds); err != nil {
		return 1, explain(err, bare)
	}
	fmt.Fprintf(stdout, "password changed for %s (%s: no session was ended)\n", bare, why)
	return 0, nil
}

// exitCode is 1 for an error, 0 for none.
func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

// openStore opens the server's storage. xmppctl never creates the
// embedded database: run from the wrong directory it would make an empty
// one there, where no account is found and none added reaches the server.
func openStore(ctx context.Context, cfg config.Config) (storage.Store, error) {
	if cfg.Storage.Backend != "postgres" {
		path := cfg.SQLitePath()
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: give xmppctl the server's -config or -data (xmppd creates the database when it first starts)", path)
		}
	}
	store, err := cfg.OpenStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return store, nil
}

// token runs the token commands, which need the secret but no storage.
func token(cfg config.Config, args []string, stdout io.Writer) (int, error) {
	if args[0] != "mint" {
		return 2, fmt.Errorf("unknown token command %q\n%s", args[0], usage)
	}
	fs := flag.NewFlagSet("token mint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	aud := fs.String("audience", "", "the token's audience (default: auth.tokens.audience, or the domain)")
	// Flags may come before or after the JID.
	if err := fs.Parse(args[1:]); err != nil {
		return 2, fmt.Errorf("%v\n%s", err, usage)
	}
	if fs.NArg() < 1 {
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	who := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return 2, fmt.Errorf("%v\n%s", err, usage)
	}
	if fs.NArg() != 0 {
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	if *ttl <= 0 {
		return 2, fmt.Errorf("-ttl must be positive\n%s", usage)
	}
	bare, err := accountJID(who, cfg.Domain)
	if err != nil {
		return 1, err
	}
	secret, err := cfg.TokenSecret()
	if err != nil {
		return 1, err
	}
	if secret == nil {
		return 1, errors.New("no token secret configured: set auth.tokens.secret or auth.tokens.secret_file")
	}
	t, err := apptoken.Mint(secret, bare, cmp.Or(*aud, cfg.Auth.Tokens.Audience, cfg.Domain), *ttl, time.Now())
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(stdout, t)
	return 0, nil
}

// accountJID normalises an account address; it must be a bare JID on the
// served domain.
func accountJID(s, domain string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid JID: %w", s, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return "", fmt.Errorf("%q is not an account address (user@domain)", s)
	}
	if j.Domainpart() != domain {
		return "", fmt.Errorf("%q is not on the served domain %q", s, domain)
	}
	return j.String(), nil
}

func explain(err error, bare string) error {
	switch {
	case errors.Is(err, storage.ErrExists):
		return fmt.Errorf("%s already exists", bare)
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%s does not exist", bare)
	}
	return err
}

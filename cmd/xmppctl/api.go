package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/config"
	"github.com/xmppd/xmppd/storage"
)

// apiToken runs "api-token create|list|revoke" on the store: tokens are
// made where they are kept, so that the first one needs no API.
func apiToken(ctx context.Context, store storage.APITokens, args []string, stdout io.Writer) (int, error) {
	cmd, rest := args[0], args[1:]
	switch {
	case cmd == "create" && len(rest) == 1:
		name := rest[0]
		if err := admin.ValidTokenName(name); err != nil {
			return 1, err
		}
		token, hash := admin.NewToken()
		if err := store.CreateAPIToken(ctx, name, hash, time.Now()); err != nil {
			if errors.Is(err, storage.ErrExists) {
				return 1, fmt.Errorf("a token called %s exists; revoke it first", name)
			}
			return 1, err
		}
		// Only here, once: the store keeps its hash.
		fmt.Fprintln(stdout, token)
		return 0, nil
	case cmd == "list" && len(rest) == 0:
		list, err := store.ListAPITokens(ctx)
		if err != nil {
			return 1, err
		}
		for _, t := range list {
			used := "never"
			if !t.LastUsed.IsZero() {
				used = t.LastUsed.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", t.Name, t.Created.Format(time.RFC3339), used)
		}
		return 0, nil
	case cmd == "revoke" && len(rest) == 1:
		if err := store.DeleteAPIToken(ctx, rest[0]); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return 1, fmt.Errorf("no token called %s", rest[0])
			}
			return 1, err
		}
		fmt.Fprintf(stdout, "revoked %s\n", rest[0])
		return 0, nil
	case cmd == "create" || cmd == "list" || cmd == "revoke":
		return 2, errors.New("wrong number of arguments\n" + usage)
	}
	return 2, fmt.Errorf("unknown api-token command %q\n%s", cmd, usage)
}

// apiClient calls the running server's admin API.
type apiClient struct {
	base  string // ends without "/"
	token string
	http  *http.Client
}

// newAPIClient finds the API and the token: flags, then the environment,
// then the configuration (docs/configuration.md, xmppctl).
func newAPIClient(cfg config.Config, apiFlag, tokenFlag string) (*apiClient, error) {
	base, err := apiBase(cfg, apiFlag)
	if err != nil {
		return nil, err
	}
	token := cmp.Or(tokenFlag, os.Getenv("XMPPD_API_TOKEN"))
	if token == "" && cfg.API.TokenFile != "" {
		f, err := os.Open(cfg.API.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("api.token_file: %w", err)
		}
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		token = strings.TrimSpace(line)
	}
	if token == "" {
		return nil, errors.New("no API token: give -token, set XMPPD_API_TOKEN, or api.token_file (xmppctl api-token create NAME makes one)")
	}
	return &apiClient{
		base:  strings.TrimSuffix(base, "/") + admin.Prefix,
		token: token,
		http:  &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// apiBase is the admin API's URL: the flag, XMPPD_API, else listen.admin
// of the configuration.
func apiBase(cfg config.Config, apiFlag string) (string, error) {
	base := cmp.Or(apiFlag, os.Getenv("XMPPD_API"))
	if base == "" {
		if cfg.Listen.Admin == "" || !cfg.API.Enabled {
			return "", errNoAPI
		}
		host, port, err := net.SplitHostPort(cfg.Listen.Admin)
		if err != nil {
			return "", fmt.Errorf("listen.admin: %w", err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	if _, err := url.Parse(base); err != nil {
		return "", fmt.Errorf("the API's URL: %w", err)
	}
	return base, nil
}

var errNoAPI = errors.New("no admin API to call: set listen.admin and api.enabled, or give -api URL")

// call makes one request; an API error becomes an error with its message
// (and field).
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e admin.Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Message != "" {
			if e.Field != "" {
				return &apiError{resp.StatusCode, fmt.Sprintf("%s: %s (HTTP %d)", e.Field, e.Message, resp.StatusCode)}
			}
			return &apiError{resp.StatusCode, fmt.Sprintf("%s (HTTP %d)", e.Message, resp.StatusCode)}
		}
		return &apiError{resp.StatusCode, fmt.Sprintf("%s %s: HTTP %s", method, path, resp.Status)}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// apiError is an answer of the API other than 2xx.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// live runs the commands that go through the API: "session list|kick",
// "status", "send" and "event".
func live(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("xmppctl "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	apiURL := fs.String("api", "", "the admin API's base URL, e.g. http://127.0.0.1:5281")
	token := fs.String("token", "", "an API token (prefer XMPPD_API_TOKEN or api.token_file)")
	from := fs.String("from", "", "send: the account it comes from (default: the server)")
	typ := fs.String("type", "chat", "send: chat, normal or headline")
	subject := fs.String("subject", "", "send: the subject")
	store := fs.Bool("store", false, "event: keep it offline for accounts with no session")
	cmd := args[0]
	// Flags may come before, between or after the arguments.
	var rest []string
	for a := args[1:]; ; {
		if err := fs.Parse(a); err != nil {
			return 2, fmt.Errorf("%v\n%s", err, usage)
		}
		if fs.NArg() == 0 {
			break
		}
		rest, a = append(rest, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case cmd == "status" && len(rest) == 0:
	case cmd == "session" && len(rest) == 1 && rest[0] == "list":
	case cmd == "session" && len(rest) == 2 && rest[0] == "kick":
	case cmd == "send" && len(rest) >= 2, cmd == "event" && len(rest) >= 3:
	default:
		return 2, errors.New("unknown or malformed command\n" + usage)
	}
	c, err := newAPIClient(cfg, *apiURL, *token)
	if err != nil {
		return 1, err
	}
	switch {
	case cmd == "send":
		to := addresses(rest[:len(rest)-1])
		in := admin.SendMessage{From: *from, Type: *typ, Subject: *subject, Body: rest[len(rest)-1],
			To: admin.MessageTo{Recipients: to.Recipients, Rooms: to.rooms}}
		var out admin.Sent
		if err := c.call(ctx, "POST", "/messages", in, &out); err != nil {
			return 1, err
		}
		fmt.Fprintf(stdout, "sent %s to %d recipients and %d rooms\n", out.ID, len(out.Recipients), len(out.Rooms))
		return 0, nil
	case cmd == "event":
		to := addresses(rest[2:])
		if len(to.rooms) > 0 {
			return 2, errors.New("an event goes to accounts, teams and projects, not rooms\n" + usage)
		}
		in := admin.SendEvent{Name: rest[0], Payload: json.RawMessage(rest[1]), Store: *store, To: to.Recipients}
		var out admin.EventSent
		if err := c.call(ctx, "POST", "/events", in, &out); err != nil {
			return 1, err
		}
		fmt.Fprintf(stdout, "event %s: %d sessions, stored for %d accounts\n", out.ID, out.Delivered, len(out.Stored))
		return 0, nil
	case cmd == "status":
		var st admin.Status
		if err := c.call(ctx, "GET", "/status", nil, &st); err != nil {
			return 1, err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "version\t%s\n", st.Version)
		fmt.Fprintf(tw, "domain\t%s\n", st.Domain)
		fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(st.UptimeS) * time.Second).String())
		fmt.Fprintf(tw, "node\t%s\n", st.Node)
		fmt.Fprintf(tw, "nodes\t%s\n", strings.Join(st.Nodes, " "))
		fmt.Fprintf(tw, "sessions\t%d (%d hibernated)\n", st.Sessions, st.Hibernated)
		if len(st.PerNode) > 1 || len(st.Unanswered) > 0 {
			fmt.Fprintf(tw, "cluster sessions\t%d (%d hibernated)\n", st.ClusterSessions, st.ClusterHibernated)
			for _, n := range st.PerNode {
				fmt.Fprintf(tw, "  %s\t%d (%d hibernated)\n", n.Node, n.Sessions, n.Hibernated)
			}
			for _, n := range st.Unanswered {
				fmt.Fprintf(tw, "  %s\tdid not answer\n", n)
			}
		}
		fmt.Fprintf(tw, "accounts\t%d\n", st.Accounts)
		return 0, tw.Flush()
	case rest[0] == "list":
		cursor := ""
		unanswered := map[string]bool{}
		for {
			var page admin.SessionPage
			if err := c.call(ctx, "GET", "/sessions?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
				return 1, err
			}
			for _, s := range page.Items {
				fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\n", s.JID, s.Transport, s.Node, s.Since.Format(time.RFC3339), s.Address)
			}
			for _, n := range page.Unanswered {
				unanswered[n] = true
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if len(unanswered) > 0 {
			// The list is incomplete: say so, and fail, so that a script
			// does not take it for the whole.
			return 1, fmt.Errorf("nodes that did not answer, whose sessions are missing: %s",
				strings.Join(slices.Sorted(maps.Keys(unanswered)), " "))
		}
		return 0, nil
	default:
		var out struct {
			JID string `json:"jid"`
		}
		if err := c.call(ctx, "DELETE", "/sessions/"+url.PathEscape(rest[1]), nil, &out); err != nil {
			return 1, err
		}
		fmt.Fprintf(stdout, "disconnected %s\n", out.JID)
		return 0, nil
	}
}

// to is whom "send" and "event" address: JIDs, group:ID (a team or
// project) and room:NAME.
type to struct {
	admin.Recipients
	rooms []string
}

func addresses(args []string) to {
	var t to
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "group:"):
			t.Groups = append(t.Groups, strings.TrimPrefix(a, "group:"))
		case strings.HasPrefix(a, "room:"):
			t.rooms = append(t.rooms, strings.TrimPrefix(a, "room:"))
		default:
			t.JIDs = append(t.JIDs, a)
		}
	}
	return t
}

package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/admin"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// syncBuffer is a log destination the handlers write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a real server with its admin API on an HTTP listener and a
// token called "test-app".
type fixture struct {
	*testenv.Server
	url   string
	token string
	log   *syncBuffer
}

const tokenName = "test-app"

func start(t testing.TB, backend string) *fixture {
	t.Helper()
	ts := testenv.Start(t, backend)
	f := &fixture{Server: ts, log: &syncBuffer{}}
	api := &admin.API{
		Server: ts.Server,
		Store:  ts.Store,
		Tokens: admin.StoredTokens{Store: ts.Store},
		Log:    slog.New(slog.NewTextHandler(f.log, nil)),
	}
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	f.url = hs.URL + admin.Prefix
	f.token = f.newToken(t, tokenName)
	return f
}

func (f *fixture) newToken(t testing.TB, name string) string {
	t.Helper()
	token, hash := admin.NewToken()
	if err := f.Store.CreateAPIToken(t.Context(), name, hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	return token
}

// call makes a request with token (none if ""), body marshalled to JSON
// unless it is a string; it returns the status and the decoded answer.
func (f *fixture) call(t *testing.T, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: the answer is not a JSON object: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// do is call with the fixture's token, failing unless the status is want.
func (f *fixture) do(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	code, out := f.call(t, f.token, method, path, body)
	if code != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, code, out, want)
	}
	return out
}

func TestUnauthorised(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		f := start(t, backend)
		other := f.newToken(t, "other")
		for _, tok := range []string{"", "xmppd_" + strings.Repeat("A", 43), "not-even-prefixed", f.token + "x"} {
			if code, out := f.call(t, tok, "GET", "/status", nil); code != http.StatusUnauthorized || out["error"] == "" {
				t.Errorf("token %q: %d %v, want 401 with an error", tok, code, out)
			}
		}
		f.do(t, "GET", "/status", nil, http.StatusOK)
		if code, _ := f.call(t, other, "GET", "/status", nil); code != http.StatusOK {
			t.Fatalf("second token: %d", code)
		}
		// Revocation takes effect at the next request.
		if err := f.Store.DeleteAPIToken(t.Context(), "other"); err != nil {
			t.Fatal(err)
		}
		if code, _ := f.call(t, other, "GET", "/status", nil); code != http.StatusUnauthorized {
			t.Fatalf("revoked token: %d, want 401", code)
		}
		// A change refused for its token changes nothing.
		if code, _ := f.call(t, other, "POST", "/accounts", map[string]string{"localpart": "mallory", "password": "pw"}); code != http.StatusUnauthorized {
			t.Fatalf("create with a revoked token: %d, want 401", code)
		}
		if _, err := f.Store.Credentials(t.Context(), "mallory@localhost"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("an account was made with a revoked token: %v", err)
		}
		// The token's use is recorded.
		list, err := f.Store.ListAPITokens(t.Context())
		if err != nil || len(list) != 1 || list[0].LastUsed.IsZero() {
			t.Fatalf("tokens after use: %+v, %v; want test-app with LastUsed", list, err)
		}
	})
}

func TestValidation(t *testing.T) {
	f := start(t, "sqlite")
	f.AddUser(t, "alice", "pw")
	for _, c := range []struct {
		method, path string
		body         any
		code         int
		field        string
	}{
		{"POST", "/accounts", map[string]string{}, 400, "jid"},
		{"POST", "/accounts", map[string]string{"jid": "@@", "password": "pw"}, 400, "jid"},
		{"POST", "/accounts", map[string]string{"jid": "bob@example.org", "password": "pw"}, 400, "jid"},
		{"POST", "/accounts", map[string]string{"jid": "bob@localhost/phone", "password": "pw"}, 400, "jid"},
		{"POST", "/accounts", map[string]string{"jid": "bob@localhost", "localpart": "bob", "password": "pw"}, 400, "localpart"},
		{"POST", "/accounts", map[string]string{"localpart": "b@b", "password": "pw"}, 400, "localpart"},
		{"POST", "/accounts", map[string]string{"localpart": "bob"}, 400, "password"},
		{"POST", "/accounts", map[string]any{"localpart": "bob", "password": 7}, 400, "password"},
		{"POST", "/accounts", map[string]string{"localpart": "bob", "pw": "x"}, 400, "pw"},
		{"POST", "/accounts", `{"localpart": "bob", "password": "pw"} {}`, 400, ""},
		{"POST", "/accounts", map[string]string{"localpart": "alice", "password": "pw"}, 409, ""},
		{"GET", "/accounts?limit=0", nil, 400, "limit"},
		{"GET", "/accounts?limit=x", nil, 400, "limit"},
		{"GET", "/accounts/nobody@localhost", nil, 404, ""},
		{"GET", "/accounts/alice@example.org", nil, 404, ""},
		{"GET", "/accounts/" + url.PathEscape("@@"), nil, 400, "jid"},
		{"PUT", "/accounts/nobody@localhost/password", map[string]string{"password": "pw"}, 404, ""},
		{"PUT", "/accounts/alice@localhost/password", map[string]string{"password": ""}, 400, "password"},
		{"PUT", "/accounts/alice@localhost/password", nil, 400, ""},
		{"DELETE", "/accounts/nobody@localhost", nil, 404, ""},
		{"DELETE", "/sessions/alice@localhost", nil, 400, "jid"},
		{"DELETE", "/sessions/" + url.PathEscape("alice@localhost/none"), nil, 404, ""},
		{"GET", "/nothing", nil, 404, ""},
	} {
		code, out := f.call(t, f.token, c.method, c.path, c.body)
		if code != c.code {
			t.Errorf("%s %s %v: %d %v, want %d", c.method, c.path, c.body, code, out, c.code)
			continue
		}
		if got, _ := out["field"].(string); got != c.field || out["error"] == "" {
			t.Errorf("%s %s %v: %v, want an error naming field %q", c.method, c.path, c.body, out, c.field)
		}
	}
	// Nothing refused was half made, and alice's password is unchanged.
	users, err := f.Store.ListUsers(t.Context())
	if err != nil || len(users) != 1 {
		t.Fatalf("accounts after refused requests: %v, %v", users, err)
	}
	f.Dial(t, jid.MustParse("alice@localhost"), "pw", "r").Close()
}

func TestAccountLifecycle(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		f := start(t, backend)
		ctx := t.Context()
		alice := jid.MustParse("alice@localhost")
		out := f.do(t, "POST", "/accounts", map[string]string{"localpart": "Alice", "password": "first"}, http.StatusCreated)
		if out["jid"] != "alice@localhost" {
			t.Fatalf("created %v, want alice@localhost", out["jid"])
		}
		f.do(t, "POST", "/accounts", map[string]string{"jid": "bob@localhost", "password": "bob"}, http.StatusCreated)
		// The account works over XMPP.
		c := f.Dial(t, alice, "first", "phone")
		if out := f.do(t, "GET", "/accounts/alice@localhost", nil, http.StatusOK); out["online_resources"] != 1.0 {
			t.Fatalf("GET alice: %v, want one resource online", out)
		}

		// A new password ends the session, and only it works from then on.
		out = f.do(t, "PUT", "/accounts/alice@localhost/password", map[string]string{"password": "second"}, http.StatusOK)
		if out["sessions_ended"] != 1.0 {
			t.Fatalf("password change: %v, want one session ended", out)
		}
		c.ExpectStreamError(t, "not-authorized")
		if err := f.DialMech(alice, "first", sasl.ScramSha256); err == nil {
			t.Fatal("the old password still works")
		}
		if err := f.DialMech(alice, "second", sasl.ScramSha256); err != nil {
			t.Fatalf("the new password: %v", err)
		}
		c = f.Dial(t, alice, "second", "phone")

		// What the account stores: a roster item and a vCard.
		if r := c.IQ(t, "set", "", `<query xmlns="jabber:iq:roster"><item jid="bob@localhost" name="Bob"/></query>`); r.Get("type") != "result" {
			t.Fatalf("roster set: %s", r.Get("type"))
		}
		if r := c.IQ(t, "set", "", `<vCard xmlns="vcard-temp"><FN>Alice</FN></vCard>`); r.Get("type") != "result" {
			t.Fatalf("vCard set: %s", r.Get("type"))
		}
		if items, _ := f.Store.Roster(ctx, "alice@localhost"); len(items) != 1 {
			t.Fatalf("roster before deletion: %v", items)
		}

		out = f.do(t, "DELETE", "/accounts/alice@localhost", nil, http.StatusOK)
		if out["sessions_ended"] != 1.0 {
			t.Fatalf("delete: %v, want one session ended", out)
		}
		c.ExpectStreamError(t, "not-authorized")
		if _, err := f.Store.Credentials(ctx, "alice@localhost"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("credentials after deletion: %v", err)
		}
		if items, err := f.Store.Roster(ctx, "alice@localhost"); err != nil || len(items) != 0 {
			t.Fatalf("roster after deletion: %v, %v", items, err)
		}
		if _, err := f.Store.XMLDoc(ctx, "alice@localhost", "vcard-temp"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("vCard after deletion: %v", err)
		}
		f.do(t, "GET", "/accounts/alice@localhost", nil, http.StatusNotFound)
		f.do(t, "DELETE", "/accounts/alice@localhost", nil, http.StatusNotFound)

		// Made again, the account starts clean.
		f.do(t, "POST", "/accounts", map[string]string{"jid": "alice@localhost", "password": "third"}, http.StatusCreated)
		c = f.Dial(t, alice, "third", "phone")
		r := c.IQ(t, "get", "", `<query xmlns="jabber:iq:roster"/>`)
		if q := r.Child("jabber:iq:roster", "query"); q == nil || len(q.Elements()) != 0 {
			t.Fatalf("roster of the new account: %v", r)
		}

		// Every change was logged with the token's name.
		log := f.log.String()
		for _, want := range []string{
			`msg="account created" jid=alice@localhost token=test-app`,
			`msg="account password changed" jid=alice@localhost sessions_ended=1 token=test-app`,
			`msg="account deleted" jid=alice@localhost sessions_ended=1 token=test-app`,
			`msg="admin change" method=DELETE path=/api/v1/accounts/alice@localhost token=test-app status=404`,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		if strings.Contains(log, "first") || strings.Contains(log, "second") || strings.Contains(log, f.token) {
			t.Errorf("the log shows a password or the token:\n%s", log)
		}
	})
}

func TestSessions(t *testing.T) {
	f := start(t, "sqlite")
	alice := f.AddUser(t, "alice", "pw")
	bob := f.AddUser(t, "bob", "pw")
	ca, err := f.DialFrom(t, "127.0.0.7", alice, "pw", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	cb := f.Dial(t, bob, "pw", "phone/1")
	before := time.Now()

	out := f.do(t, "GET", "/sessions", nil, http.StatusOK)
	items, _ := out["items"].([]any)
	if len(items) != 2 || out["next_cursor"] != nil {
		t.Fatalf("sessions: %v, want two on one page", out)
	}
	a := items[0].(map[string]any)
	if a["jid"] != "alice@localhost/laptop" || a["transport"] != xmpp.TransportTCP || a["node"] != f.Server.Node() ||
		!strings.HasPrefix(a["address"].(string), "127.0.0.7:") || a["hibernated"] != false {
		t.Fatalf("alice's session: %v", a)
	}
	if since, err := time.Parse(time.RFC3339Nano, a["since"].(string)); err != nil || since.After(before) || before.Sub(since) > time.Minute {
		t.Fatalf("alice's session since %v (%v), want just before %v", a["since"], err, before)
	}
	if items[1].(map[string]any)["jid"] != "bob@localhost/phone/1" {
		t.Fatalf("second session: %v", items[1])
	}
	// Paging by one.
	out = f.do(t, "GET", "/sessions?limit=1", nil, http.StatusOK)
	if out["next_cursor"] != "alice@localhost/laptop" {
		t.Fatalf("first page of one: %v", out)
	}
	out = f.do(t, "GET", "/sessions?limit=1&cursor="+url.QueryEscape("alice@localhost/laptop"), nil, http.StatusOK)
	if items := out["items"].([]any); len(items) != 1 || items[0].(map[string]any)["jid"] != "bob@localhost/phone/1" || out["next_cursor"] != nil {
		t.Fatalf("second page of one: %v", out)
	}

	// Kicking bob (a resource with a slash, path-escaped) ends his session
	// only.
	f.do(t, "DELETE", "/sessions/"+url.PathEscape("bob@localhost/phone/1"), nil, http.StatusOK)
	cb.ExpectStreamError(t, "policy-violation")
	awaitSessions(t, f, 1)
	if r := ca.IQ(t, "get", "", `<query xmlns="jabber:iq:roster"/>`); r.Get("type") != "result" {
		t.Fatal("alice's session suffered from bob's kick")
	}
	if !strings.Contains(f.log.String(), `msg="session disconnected" jid=bob@localhost/phone/1 token=test-app`) {
		t.Errorf("the kick is not logged with the token:\n%s", f.log)
	}
}

// awaitSessions waits until the API lists n sessions: a kicked session
// leaves the router when its goroutine ends, after the stream error.
func awaitSessions(t *testing.T, f *fixture, n int) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for {
		out := f.do(t, "GET", "/sessions", nil, http.StatusOK)
		if items := out["items"].([]any); len(items) == n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("sessions: %v, want %d", items, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAccountPaging(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		f := start(t, backend)
		creds := storage.Credentials{Salt: []byte("salt"), Iterations: 4096,
			SHA1: storage.SCRAMKeys{StoredKey: []byte("k"), ServerKey: []byte("k")}, SHA256: storage.SCRAMKeys{StoredKey: []byte("k"), ServerKey: []byte("k")}}
		want := map[string]bool{}
		for i := range 250 {
			j := fmt.Sprintf("user%03d@localhost", i)
			if err := f.Store.CreateUser(t.Context(), j, creds); err != nil {
				t.Fatal(err)
			}
			want[j] = true
		}
		seen := map[string]int{}
		cursor, pages := "", 0
		for {
			out := f.do(t, "GET", "/accounts?limit=100&cursor="+url.QueryEscape(cursor), nil, http.StatusOK)
			pages++
			for _, it := range out["items"].([]any) {
				seen[it.(map[string]any)["jid"].(string)]++
			}
			next, _ := out["next_cursor"].(string)
			if next == "" {
				break
			}
			if pages > 3 {
				t.Fatalf("more than 3 pages: %v", out["next_cursor"])
			}
			cursor = next
		}
		if pages != 3 || len(seen) != 250 {
			t.Fatalf("%d pages, %d accounts; want 3 and 250", pages, len(seen))
		}
		for j, n := range seen {
			if n != 1 || !want[j] {
				t.Errorf("%s seen %d times", j, n)
			}
		}
	})
}

func TestStatus(t *testing.T) {
	f := start(t, "sqlite")
	alice := f.AddUser(t, "alice", "pw")
	f.AddUser(t, "bob", "pw")
	f.Dial(t, alice, "pw", "r")
	out := f.do(t, "GET", "/status", nil, http.StatusOK)
	node := f.Server.Node()
	nodes, _ := out["nodes"].([]any)
	if out["version"] != "test" || out["domain"] != "localhost" || out["node"] != node || len(nodes) != 1 || nodes[0] != node ||
		out["sessions"] != 1.0 || out["accounts"] != 2.0 || out["hibernated"] != 0.0 {
		t.Fatalf("status: %v", out)
	}
	if up, _ := out["uptime_s"].(float64); up <= 0 || up > time.Since(f.Server.Started()).Seconds()+1 {
		t.Fatalf("uptime_s %v", out["uptime_s"])
	}
}

// The token's name is what the context carries to the handlers.
func TestTokenNameUnset(t *testing.T) {
	if n := admin.TokenName(context.Background()); n != "" {
		t.Fatalf("TokenName of a bare context: %q", n)
	}
}

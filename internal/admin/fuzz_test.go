package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRequestBodies sends what the fuzzer makes as the JSON body of every
// route that takes one, through the real API on SQLite: whatever comes,
// the answer is a JSON object, and a 5xx never (a body the API cannot
// read is the client's error, a 4xx naming what is wrong).
func FuzzRequestBodies(f *testing.F) {
	routes := []struct{ method, path string }{
		{"POST", "/accounts"},
		{"PATCH", "/accounts/fuzz@localhost"},
		{"POST", "/groups"},
		{"PATCH", "/groups/eng"},
		{"POST", "/rooms"},
		{"PATCH", "/rooms/fuzzroom@conference.localhost"},
		{"PUT", "/rooms/fuzzroom@conference.localhost/members/bob@localhost"},
		{"POST", "/messages"},
		{"POST", "/events"},
	}
	for i := range routes {
		for _, seed := range []string{
			`{}`, `{"localpart":"fuzz","password":"pw"}`, `{"password":"x"}`,
			`{"id":"eng","kind":"team","name":"Eng"}`, `{"name":"fuzzroom","kind":"chat","max_occupants":5}`,
			`{"to":{"jids":["bob@localhost"],"rooms":["fuzzroom"]},"body":"hi"}`,
			`{"name":"task.changed","payload":{"id":1},"to":{"jids":["bob@localhost"]}}`,
			`{"affiliation":"member"}`, `[1,2]`, `null`, `"x"`, `{"a":`, `{"localpart":7}`,
		} {
			f.Add(i, seed)
		}
	}
	fx := start(f, "sqlite")
	// A request that hangs is a finding too: the fuzzer keeps its input.
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 || route >= len(routes) {
			return
		}
		r := routes[route]
		req, err := http.NewRequestWithContext(t.Context(), r.method, fx.url+r.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+fx.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s %s %q: %d, not a JSON object: %v", r.method, r.path, body, resp.StatusCode, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %v", r.method, r.path, body, resp.StatusCode, out)
		}
	})
}

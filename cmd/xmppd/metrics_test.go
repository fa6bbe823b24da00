package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAdminListener: the xmppd binary serves /metrics, /healthz and /readyz
// on its admin listener, and /metrics counts a failed sign-in and the
// storage calls it made.
func TestOperationsListener(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	if _, _, err := s.login(t, "nobody@localhost", "pw"); err == nil {
		t.Fatal("login to an account that does not exist succeeded")
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"storage":"ok"`) {
		t.Errorf("/readyz: %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`xmppd_auth_failures_total{mechanism="`,
		`xmppd_storage_duration_seconds_count{operation="Credentials"} `,
		`xmppd_sessions{transport="tcp"} 0`,
		`xmppd_bosh_sessions 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	// The web listener does not serve them.
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("/metrics is served on the web listener")
	}
}

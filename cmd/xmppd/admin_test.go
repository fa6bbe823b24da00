package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestAdminListener runs xmppd with a token made by xmppctl beforehand:
// the API answers on the admin listener and on the web listener, the
// change is logged with the token's name, and xmppctl's live commands
// reach it; with api.web_listener off, only the admin listener serves it.
func TestAdminListener(t *testing.T) {
	data := t.TempDir()
	code, out := xmppctl(t, "-data", data, "api-token", "create", "deploy")
	if code != 0 {
		t.Fatalf("xmppctl api-token create: exit %d: %s", code, out)
	}
	token := strings.TrimSpace(out)
	s := startServer(t, data)

	call := func(method, url string) (int, map[string]any) {
		t.Helper()
		code, v, _ := apiCall(t, token, method, url, `{"localpart":"carol","password":"pw"}`)
		return code, v
	}
	if code, v := call("GET", "http://"+s.admin+"/api/v1/status"); code != 200 || v["domain"] != "localhost" || v["version"] != "dev" {
		t.Fatalf("status on the admin listener: %d %v", code, v)
	}
	if code, v := call("POST", "http://"+s.http+"/api/v1/accounts"); code != 201 || v["jid"] != "carol@localhost" {
		t.Fatalf("create on the web listener: %d %v", code, v)
	}
	if _, _, err := s.login(t, "carol@localhost", "pw"); err != nil {
		t.Fatalf("login to the account the API made: %v", err)
	}
	awaitLog(t, s, `msg="account created" module=admin jid=carol@localhost token=deploy`)

	ctl := exec.Command(filepath.Join(bin, "xmppctl"), "-data", data, "status", "-api", "http://"+s.admin)
	ctl.Env = append(os.Environ(), "XMPPD_API_TOKEN="+token)
	got, err := ctl.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "accounts  1") {
		t.Fatalf("xmppctl status: %v: %s", err, got)
	}

	// With the API kept off the web listener.
	conf := filepath.Join(t.TempDir(), "xmppd.yaml")
	if err := os.WriteFile(conf, []byte("api:\n  web_listener: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data2 := t.TempDir()
	if code, out := xmppctl(t, "-data", data2, "api-token", "create", "deploy"); code != 0 {
		t.Fatalf("xmppctl api-token create: exit %d: %s", code, out)
	}
	s2 := startServer(t, data2, "-config", conf)
	if code, _ := call("GET", "http://"+s2.http+"/api/v1/status"); code != http.StatusNotFound {
		t.Fatalf("status on the web listener with api.web_listener false: %d, want 404", code)
	}
	if code, _ := call("GET", "http://"+s2.admin+"/api/v1/status"); code != http.StatusUnauthorized {
		t.Fatalf("the first server's token on the second: %d, want 401", code)
	}
}

// awaitLog waits until the server's log holds want.
func awaitLog(t *testing.T, s *server, want string) {
	t.Helper()
	timer := time.NewTimer(testenv.Timeout)
	defer timer.Stop()
	for !strings.Contains(s.log.String(), want) {
		select {
		case <-s.log.changed:
		case <-s.exited:
			t.Fatalf("xmppd exited: %v", s.waitErr)
		case <-timer.C:
			t.Fatalf("the log lacks %q:\n%s", want, s.log)
		}
	}
}

// On the web listener the API refuses a plain-HTTP request from outside
// the secure networks, and serves it over HTTPS or from a secure network.
func TestAPISecureOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	loopback := &xmpp.WebPolicy{SecureNetworks: xmpp.LoopbackNetworks}
	none := &xmpp.WebPolicy{}
	for _, c := range []struct {
		name   string
		policy *xmpp.WebPolicy
		tls    bool
		want   int
	}{
		{"plain from a secure network", loopback, false, http.StatusNoContent},
		{"plain from elsewhere", none, false, http.StatusForbidden},
		{"https from elsewhere", none, true, http.StatusNoContent},
	} {
		hs := httptest.NewUnstartedServer(secureOnly(ok, c.policy))
		if c.tls {
			hs.StartTLS()
		} else {
			hs.Start()
		}
		resp, err := hs.Client().Get(hs.URL + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		hs.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
}

// apiCall makes a request of the admin API at url with the bearer token
// and returns the status, the JSON object answered (nil if none) and the
// body as it came.
func apiCall(t *testing.T, token, method, url, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(raw, &v)
	return resp.StatusCode, v, raw
}

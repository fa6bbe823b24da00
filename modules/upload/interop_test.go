package upload_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixmppUpload: slixmpp's XEP-0363 plugin finds the service, uploads a
// 1 MiB file through a slot, and the file comes back byte-identical; a file
// over the service's max-file-size is refused by the plugin from the
// service's disco form.
func TestSlixmppUpload(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		bob := e.srv.AddUser(t, "bob", "secret")
		d := e.srv.StartDriver(t, bob, "secret", "slix")

		data := randomBytes(1 << 20)
		path := filepath.Join(t.TempDir(), "voice message.ogg")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d.Do(t, map[string]any{"cmd": "upload", "path": path, "content_type": "audio/ogg"})
		ev := d.Expect(t, "uploaded", nil)
		resp := do(t, "GET", ev.URL, "", nil)
		wantStatus(t, "GET "+ev.URL, resp, http.StatusOK)
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("fetched %d bytes differing from the %d slixmpp uploaded", len(got), len(data))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "audio/ogg" {
			t.Errorf("Content-Type %q, want audio/ogg", ct)
		}

		big := filepath.Join(t.TempDir(), "big.bin")
		if err := os.WriteFile(big, randomBytes(2<<20+1), 0o600); err != nil {
			t.Fatal(err)
		}
		d.Do(t, map[string]any{"cmd": "upload", "path": big})
		d.Expect(t, "file_too_big", nil)
	})
}

package upload_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/upload"
	"github.com/xmppd/xmppd/xmpp"
)

const service = "upload." + testenv.Domain

type env struct {
	srv   *testenv.Server
	svc   *upload.Service
	user  jid.JID
	c     *testenv.Client
	clock *atomic.Int64 // added to the real time, in nanoseconds
	n     int
}

// start runs a server on backend with the upload service, limits of 2 MiB
// a file and 3 MiB an account, and alice signed in.
func start(t *testing.T, backend string, configure ...func(*upload.Service)) *env {
	t.Helper()
	l := testenv.Listen(t)
	e := &env{clock: new(atomic.Int64)}
	e.svc = &upload.Service{Dir: t.TempDir(), PublicURL: "http://" + l.Addr().String(),
		MaxFileSize: 2 << 20, Quota: 3 << 20, FileLifetime: time.Hour,
		Policy: &xmpp.WebPolicy{Origins: []string{"https://app.example.com"}}}
	for _, f := range configure {
		f(e.svc)
	}
	upload.SetClock(e.svc, func() time.Time { return time.Now().Add(time.Duration(e.clock.Load())) })
	e.srv = testenv.StartWithHTTP(t, backend, l, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, Upload: e.svc})
	})
	e.user = e.srv.AddUser(t, "alice", "secret")
	e.c = e.srv.Dial(t, e.user, "secret", "phone")
	return e
}

// iq sends an IQ get to the service and returns its answer.
func (e *env) iq(t *testing.T, to, payload string) *xmpp.Element {
	t.Helper()
	e.n++
	id := fmt.Sprint("u", e.n)
	e.c.SendRaw(t, `<iq type='get' id='`+id+`' to='`+to+`'>`+payload+`</iq>`)
	return e.c.Expect(t, "answer "+id, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id })
}

// request asks for a slot; on success it returns the PUT and GET URLs.
func (e *env) request(t *testing.T, name string, size int64, ctype string) (put, get string, res *xmpp.Element) {
	t.Helper()
	res = e.iq(t, service, fmt.Sprintf(`<request xmlns='urn:xmpp:http:upload:0' filename='%s' size='%d' content-type='%s'/>`,
		xmlEscape(name), size, ctype))
	if slot := res.Child(upload.NS, "slot"); slot != nil && res.Get("type") == "result" {
		return slot.Child(upload.NS, "put").Get("url"), slot.Child(upload.NS, "get").Get("url"), res
	}
	return "", "", res
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	b.Write(xmpp.AppendEscaped(nil, s))
	return b.String()
}

// wantError checks an error answer's type and condition.
func wantError(t *testing.T, res *xmpp.Element, typ, cond string) *xmpp.Element {
	t.Helper()
	errEl := res.Child(xmpp.NSClient, "error")
	if res.Get("type") != "error" || errEl == nil {
		t.Fatalf("answer = %s, want an error %s", res, cond)
	}
	if errEl.Get("type") != typ || errEl.Child(xmpp.NSStanzas, cond) == nil {
		t.Fatalf("error = %s, want type %s and <%s/>", errEl, typ, cond)
	}
	return errEl
}

func do(t *testing.T, method, url, ctype string, body []byte, header ...string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{Timeout: testenv.Timeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wantStatus(t *testing.T, what string, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: status %d (%s), want %d", what, resp.StatusCode, strings.TrimSpace(string(b)), want)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestDisco(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		items := e.iq(t, testenv.Domain, `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
		if !strings.Contains(items.String(), `jid="`+service+`"`) {
			t.Errorf("the server's items do not list %s: %s", service, items)
		}
		info := e.iq(t, service, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		q := info.Child(upload.NSInfo, "query")
		if q == nil {
			t.Fatalf("disco#info = %s", info)
		}
		var identity, feature bool
		var maxSize string
		for _, c := range q.Elements() {
			switch {
			case c.Local == "identity":
				identity = identity || c.Get("category") == "store" && c.Get("type") == "file"
			case c.Local == "feature":
				feature = feature || c.Get("var") == upload.NS
			case c.Local == "x":
				for _, f := range c.Elements() {
					if f.Get("var") == "FORM_TYPE" && f.Child(f.Space, "value").Text() != upload.NS {
						t.Errorf("FORM_TYPE = %s", f)
					}
					if f.Get("var") == "max-file-size" {
						maxSize = f.Child(f.Space, "value").Text()
					}
				}
			}
		}
		if !identity || !feature || maxSize != fmt.Sprint(2<<20) {
			t.Errorf("disco#info: store/file identity %v, feature %v, max-file-size %q; want true, true, %d:\n%s",
				identity, feature, maxSize, 2<<20, info)
		}
	})
}

func TestUploadAndDownload(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		data := randomBytes(1 << 20)
		put, get, res := e.request(t, "holiday photo é.png", int64(len(data)), "image/png")
		if put == "" {
			t.Fatalf("slot request: %s", res)
		}
		if put != get || !strings.HasPrefix(put, e.svc.PublicURL+upload.Path) {
			t.Errorf("put %s, get %s: want the same URL under %s", put, get, e.svc.PublicURL+upload.Path)
		}
		// 128 bits at least in the random part.
		tok := strings.Split(strings.TrimPrefix(put, e.svc.PublicURL+upload.Path), "/")[0]
		if len(tok) < 22 {
			t.Errorf("token %q is too short to be unguessable", tok)
		}
		// Nothing to get before the PUT.
		wantStatus(t, "GET before PUT", do(t, "GET", get, "", nil), http.StatusNotFound)
		wantStatus(t, "PUT", do(t, "PUT", put, "image/png", data), http.StatusCreated)

		resp := do(t, "GET", get, "", nil)
		wantStatus(t, "GET", resp, http.StatusOK)
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("GET returned %d bytes differing from the %d uploaded", len(got), len(data))
		}
		for k, want := range map[string]string{
			"Content-Type":           "image/png",
			"Content-Length":         fmt.Sprint(len(data)),
			"X-Content-Type-Options": "nosniff",
		} {
			if v := resp.Header.Get(k); v != want {
				t.Errorf("%s: %q, want %q", k, v, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "sandbox") {
			t.Errorf("Content-Security-Policy %q does not forbid scripts", csp)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") {
			t.Errorf("Content-Disposition of an image: %q, want inline", cd)
		}
		head := do(t, "HEAD", get, "", nil)
		wantStatus(t, "HEAD", head, http.StatusOK)
		if head.ContentLength != int64(len(data)) {
			t.Errorf("HEAD Content-Length %d, want %d", head.ContentLength, len(data))
		}

		// The slot is used: a second PUT is refused and the file stays.
		wantStatus(t, "second PUT", do(t, "PUT", put, "image/png", randomBytes(len(data))), http.StatusForbidden)
		resp = do(t, "GET", get, "", nil)
		if got, _ := io.ReadAll(resp.Body); !bytes.Equal(got, data) {
			t.Errorf("the file changed after a refused second PUT")
		}

		// A file that is not an image is an attachment.
		put, get, res = e.request(t, "page.html", 20, "text/html")
		if put == "" {
			t.Fatalf("slot request: %s", res)
		}
		wantStatus(t, "PUT html", do(t, "PUT", put, "text/html; charset=utf-8", []byte("<script>1</script>  ")), http.StatusCreated)
		resp = do(t, "GET", get, "", nil)
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "page.html") {
			t.Errorf("Content-Disposition of an HTML file: %q, want an attachment named page.html", cd)
		}

		// Unknown tokens and names are not found.
		wantStatus(t, "GET unknown", do(t, "GET", e.svc.PublicURL+upload.Path+strings.Repeat("A", len(tok))+"/x.png", "", nil), http.StatusNotFound)
		wantStatus(t, "GET wrong name", do(t, "GET", e.svc.PublicURL+upload.Path+tok+"/other.png", "", nil), http.StatusNotFound)
		wantStatus(t, "GET no name", do(t, "GET", e.svc.PublicURL+upload.Path+tok, "", nil), http.StatusNotFound)
	})
}

func TestSlotRequestErrors(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		_, _, res := e.request(t, "big.mp4", 2<<20+1, "video/mp4")
		errEl := wantError(t, res, "modify", "not-acceptable")
		ftl := errEl.Child(upload.NS, "file-too-large")
		if ftl == nil || ftl.Child(upload.NS, "max-file-size").Text() != fmt.Sprint(2<<20) {
			t.Errorf("file too large: %s, want <file-too-large><max-file-size>%d</max-file-size>", errEl, 2<<20)
		}
		for _, size := range []string{"0", "-5", "abc", ""} {
			res := e.iq(t, service, `<request xmlns='urn:xmpp:http:upload:0' filename='a.txt' size='`+size+`'/>`)
			wantError(t, res, "modify", "bad-request")
		}
		for _, name := range []string{"", "../", "  ..", "dir/\x7f"} {
			_, _, res := e.request(t, name, 10, "text/plain")
			wantError(t, res, "modify", "bad-request")
		}
		_, _, res = e.request(t, "a.txt", 10, "not a type")
		wantError(t, res, "modify", "bad-request")
		// A path is cut to its last part.
		put, _, res := e.request(t, "../../etc/passwd", 10, "")
		if !strings.HasSuffix(put, "/passwd") {
			t.Errorf("slot for ../../etc/passwd: %s", res)
		}

		// The quota: 3 MiB, of which 10 bytes are reserved above.
		if put, _, res := e.request(t, "one.bin", 2<<20, ""); put == "" {
			t.Fatalf("first 2 MiB: %s", res)
		}
		_, _, res = e.request(t, "two.bin", 1<<20, "")
		wantError(t, res, "wait", "resource-constraint")
		// Once the unused slots have expired they no longer count.
		e.clock.Add(int64(upload.DefaultSlotLifetime + time.Second))
		if put, _, res := e.request(t, "two.bin", 2<<20, ""); put == "" {
			t.Errorf("2 MiB after the earlier slots expired: %s", res)
		}
	})
}

func TestPutRefused(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		put, get, res := e.request(t, "note.txt", 100, "text/plain")
		if put == "" {
			t.Fatalf("slot request: %s", res)
		}
		wantStatus(t, "PUT shorter", do(t, "PUT", put, "text/plain", randomBytes(99)), http.StatusBadRequest)
		wantStatus(t, "PUT longer", do(t, "PUT", put, "text/plain", randomBytes(101)), http.StatusRequestEntityTooLarge)
		wantStatus(t, "PUT other type", do(t, "PUT", put, "image/png", randomBytes(100)), http.StatusBadRequest)
		wantStatus(t, "PUT unknown slot", do(t, "PUT", e.svc.PublicURL+upload.Path+strings.Repeat("B", 32)+"/note.txt", "text/plain", randomBytes(100)), http.StatusNotFound)
		wantStatus(t, "GET after refused PUTs", do(t, "GET", get, "", nil), http.StatusNotFound)

		// CORS: a preflight from an allowed origin is answered for it.
		resp := do(t, "OPTIONS", put, "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "PUT")
		wantStatus(t, "preflight", resp, http.StatusNoContent)
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
			t.Errorf("preflight headers: %v", resp.Header)
		}
		resp = do(t, "OPTIONS", put, "", nil, "Origin", "https://evil.example.net", "Access-Control-Request-Method", "PUT")
		wantStatus(t, "preflight from another origin", resp, http.StatusForbidden)
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("Access-Control-Allow-Origin %q for an origin not allowed", v)
		}

		// After its deadline the slot takes nothing.
		e.clock.Add(int64(upload.DefaultSlotLifetime + time.Second))
		wantStatus(t, "PUT after the deadline", do(t, "PUT", put, "text/plain", randomBytes(100)), http.StatusForbidden)
	})
}

func TestExpiry(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		e := start(t, backend)
		data := randomBytes(1000)
		put, get, res := e.request(t, "a.bin", 1000, "")
		if put == "" {
			t.Fatalf("slot request: %s", res)
		}
		wantStatus(t, "PUT", do(t, "PUT", put, "", data), http.StatusCreated)
		unused, _, _ := e.request(t, "never.bin", 1000, "")
		ctx := t.Context()
		if n := e.svc.Sweep(ctx); n != 0 {
			t.Errorf("a sweep before anything expired deleted %d files", n)
		}
		wantStatus(t, "GET before expiry", do(t, "GET", get, "", nil), http.StatusOK)

		// Past the slot deadline the unused slot is gone; the file stays.
		e.clock.Add(int64(upload.DefaultSlotLifetime + time.Second))
		e.svc.Sweep(ctx)
		if n, err := e.srv.Store.UploadBytes(ctx, e.user.String(), time.Now().Add(time.Duration(e.clock.Load()))); err != nil || n != 1000 {
			t.Errorf("bytes counted after the unused slot expired: %d, %v; want 1000", n, err)
		}
		wantStatus(t, "PUT to a swept slot", do(t, "PUT", unused, "", data), http.StatusNotFound)

		// Past the file lifetime the file is gone.
		e.clock.Add(int64(time.Hour))
		if n := e.svc.Sweep(ctx); n != 1 {
			t.Errorf("sweep after the lifetime deleted %d files, want 1", n)
		}
		wantStatus(t, "GET after expiry", do(t, "GET", get, "", nil), http.StatusNotFound)
		if n, _ := e.srv.Store.UploadBytes(ctx, e.user.String(), time.Now()); n != 0 {
			t.Errorf("bytes counted after expiry: %d", n)
		}

		// A deleted account's files go at the next sweep.
		put, get, _ = e.request(t, "b.bin", 1000, "")
		wantStatus(t, "PUT", do(t, "PUT", put, "", data), http.StatusCreated)
		if err := e.srv.Store.DeleteUser(ctx, e.user.String()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "GET of a deleted account's file", do(t, "GET", get, "", nil), http.StatusNotFound)
		if n := e.svc.Sweep(ctx); n != 1 {
			t.Errorf("sweep after the account was deleted removed %d files, want 1", n)
		}
	})
}

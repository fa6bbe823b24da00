package upload_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/upload"
)

// A PUT whose body stalls is cut once it lags behind the minimum rate by
// more than the grace: 408, the connection closed, nothing left in the
// folder. While it runs, another PUT to the same slot gets 409. Afterwards
// the slot still takes a PUT at a normal pace.
func TestSlowPut(t *testing.T) {
	const rate, grace, size = 1000, 500 * time.Millisecond, 2000
	e := start(t, "sqlite", func(s *upload.Service) { s.MinPutRate, s.PutGrace = rate, grace })
	put, _, res := e.request(t, "slow.bin", size, "application/octet-stream")
	if put == "" {
		t.Fatalf("slot request: %s", res)
	}
	u, err := url.Parse(put)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, testenv.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.Timeout))
	begin := time.Now()
	const sent = 10
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s",
		u.RequestURI(), u.Host, size, strings.Repeat("x", sent))

	// A second PUT to the slot while the first runs: a wrong length is
	// refused with 400 before the PUT starts, unless one is under way (409),
	// so probing changes nothing.
	for deadline := time.Now().Add(grace); ; {
		resp := do(t, "PUT", put, "application/octet-stream", []byte("x"))
		if resp.StatusCode == http.StatusConflict {
			break
		}
		if resp.StatusCode != http.StatusBadRequest || time.Now().After(deadline) {
			t.Fatalf("a second PUT while one runs: %d, want 409", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}

	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled PUT: %s, want 408", resp.Status)
	}
	// Due at grace + sent/rate after the PUT began; allow for scheduling.
	if due := grace + sent*time.Second/rate; took < due || took > due+time.Second {
		t.Errorf("stalled PUT cut after %v, want %v (+ up to 1 s)", took, due)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection of a cut PUT stays open: %v", err)
	}
	if files, _ := os.ReadDir(e.svc.Dir); len(files) > 0 {
		t.Errorf("left after the cut PUT: %v", files)
	}
	wantStatus(t, "PUT at a normal pace after a cut one", do(t, "PUT", put, "application/octet-stream", randomBytes(size)), http.StatusCreated)
}

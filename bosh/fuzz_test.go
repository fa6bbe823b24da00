package bosh_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
)

// FuzzRequests posts what the fuzzer makes to the BOSH endpoint of a real
// server: every answer comes in time and is a <body/> (a session's, or
// the terminate of XEP-0124 §17) or a 4xx, never a 5xx.
func FuzzRequests(f *testing.F) {
	for _, seed := range []string{
		`<body xmlns="http://jabber.org/protocol/httpbind" rid="1" to="localhost" wait="1" hold="1" ver="1.6" xmpp:version="1.0" xmlns:xmpp="urn:xmpp:xbosh"/>`,
		`<body xmlns="http://jabber.org/protocol/httpbind" rid="2" sid="nope"><message xmlns="jabber:client" to="a@localhost"><body>x</body></message></body>`,
		`<body xmlns="http://jabber.org/protocol/httpbind" rid="3" sid="nope" type="terminate"/>`,
		`<body xmlns="http://jabber.org/protocol/httpbind" rid="99999999999999999999"/>`,
		`<body xmlns="http://jabber.org/protocol/httpbind" rid="1" to="localhost" wait="-1" hold="9999"/>`,
		`<?xml version="1.0"?><body xmlns="http://jabber.org/protocol/httpbind"/>`,
		`<body xmlns="wrong"/>`, `<body`, ``, `<!DOCTYPE x><body/>`,
	} {
		f.Add(seed)
	}
	s := testenv.Start(f, "sqlite")
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, body string) {
		resp, err := client.Post(s.BOSHURL(), "text/xml; charset=utf-8", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: reading the answer: %v", body, err)
		}
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("%q: %d %s", body, resp.StatusCode, out)
		case resp.StatusCode == http.StatusOK && !strings.HasPrefix(string(out), "<body"):
			t.Fatalf("%q: 200 without a <body/>: %s", body, out)
		}
	})
}

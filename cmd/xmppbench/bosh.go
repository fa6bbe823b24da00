package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0124 and XEP-0206, as the client sends them.
const (
	nsHTTPBind = "http://jabber.org/protocol/httpbind"
	nsXBOSH    = "urn:xmpp:xbosh"
)

// boshWait is the longest the client asks the server to hold a request
// (XEP-0124 §7.1); the HTTP client gives up a little after it.
const boshWait = 30

// boshConn is the client's side of XMPP over BOSH (XEP-0124, XEP-0206)
// presented as a connection that carries a classic stream, as wsclient does
// for WebSocket, so that login and the scenarios are the same for every
// transport. What is written is cut into elements (xmpp.StreamSplitter):
// the first stream header creates the session, a later one is a restart
// request (XEP-0206 §5), elements go out as the payload of the next request,
// and the stream's end is a terminate request. One request is kept waiting
// at the server (hold 1) so that what the server sends arrives at once; at
// most two are open, as the session's requests attribute allows. What the
// responses carry reads as stream bytes, a stream header put in front at
// each (re)start and the stream's end after a terminate response.
type boshConn struct {
	url    string
	to     string
	hc     *http.Client
	tr     *http.Transport
	ctx    context.Context
	cancel context.CancelFunc
	local  net.Addr
	remote net.Addr

	mu       sync.Mutex
	split    xmpp.StreamSplitter
	sid      string
	rid      int64
	inflight int
	queue    []boshRequest // waiting for a free request slot, in order
	started  bool          // the session exists: polls may go out
	termSent bool
	in       []byte
	eof      bool // the session ended: no more input after in
	closed   bool
	err      error
	readable chan struct{}
	readDL   time.Time
	requests sync.WaitGroup // the HTTP requests in flight
}

// boshRequest is one request to send: a payload, a restart or the end.
type boshRequest struct {
	payload   [][]byte
	restart   bool
	terminate bool
}

// dialBOSH prepares a BOSH connection to url from the local address src;
// the session is created when the client writes its stream header.
func dialBOSH(cfg *config, src net.IP) *boshConn {
	nd := &net.Dialer{Timeout: cfg.timeout}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	tr := &http.Transport{
		DialContext:         nd.DialContext,
		MaxIdleConnsPerHost: 2,
		MaxConnsPerHost:     3,
		IdleConnTimeout:     2 * boshWait * time.Second,
		DisableCompression:  true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &boshConn{
		url: cfg.boshURL, to: cfg.domain, tr: tr, ctx: ctx, cancel: cancel,
		hc:       &http.Client{Transport: tr, Timeout: (boshWait + 30) * time.Second},
		local:    &net.TCPAddr{IP: src},
		remote:   &net.TCPAddr{},
		readable: make(chan struct{}, 1),
		rid:      1 + int64(time.Now().UnixNano()%(1<<40)),
	}
}

// streamHeader is what reads as the server's stream header at each
// (re)start; the framer needs only a start tag.
func (b *boshConn) streamHeader() []byte {
	return []byte(`<stream:stream xmlns="jabber:client" xmlns:stream="` + nsStreams + `" from="` + b.to + `" version="1.0">`)
}

func (b *boshConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	err := b.split.Write(p, func(part xmpp.StreamPart) error {
		switch part.Kind {
		case xmpp.PartHeader:
			b.in = append(b.in, b.streamHeader()...)
			if b.sid == "" && !b.started {
				b.started = true
				b.send(b.createBody(), true)
				return nil
			}
			b.queue = append(b.queue, boshRequest{restart: true})
		case xmpp.PartElement:
			el := part.AppendElement(nil)
			if n := len(b.queue); n > 0 && !b.queue[n-1].restart && !b.queue[n-1].terminate {
				b.queue[n-1].payload = append(b.queue[n-1].payload, el)
			} else {
				b.queue = append(b.queue, boshRequest{payload: [][]byte{el}})
			}
		case xmpp.PartEnd:
			b.queue = append(b.queue, boshRequest{terminate: true})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	b.pump()
	return len(p), nil
}

// createBody is the session creation request (XEP-0124 §7.1, XEP-0206 §4).
func (b *boshConn) createBody() []byte {
	return []byte(`<body xmlns="` + nsHTTPBind + `" xmlns:xmpp="` + nsXBOSH + `" rid="` + strconv.FormatInt(b.rid, 10) +
		`" to="` + b.to + `" xml:lang="en" wait="` + strconv.Itoa(boshWait) + `" hold="1" ver="1.11" xmpp:version="1.0"/>`)
}

// pump sends what is queued while a request slot is free, and an empty
// request when none is open, so that the server always holds one. Called
// with mu held.
func (b *boshConn) pump() {
	for b.sid != "" && !b.closed && !b.eof && b.err == nil && !b.termSent && b.inflight < 2 {
		var r boshRequest
		switch {
		case len(b.queue) > 0:
			r = b.queue[0]
			b.queue = b.queue[1:]
		case b.inflight == 0:
			// An empty poll, held until the server has something.
		default:
			return
		}
		b.rid++
		buf := make([]byte, 0, 256)
		buf = append(buf, `<body xmlns="`+nsHTTPBind+`" rid="`...)
		buf = strconv.AppendInt(buf, b.rid, 10)
		buf = append(buf, `" sid="`...)
		buf = append(buf, b.sid...)
		buf = append(buf, '"')
		switch {
		case r.restart:
			buf = append(buf, ` xmlns:xmpp="`+nsXBOSH+`" xmpp:restart="true" to="`...)
			buf = append(buf, b.to...)
			buf = append(buf, `" xml:lang="en"`...)
		case r.terminate:
			buf = append(buf, ` type="terminate"`...)
			b.termSent = true
		}
		if len(r.payload) == 0 {
			buf = append(buf, "/>"...)
		} else {
			buf = append(buf, '>')
			for _, el := range r.payload {
				buf = append(buf, el...)
			}
			buf = append(buf, "</body>"...)
		}
		b.send(buf, false)
	}
}

// send posts one request in its own goroutine. Called with mu held.
func (b *boshConn) send(body []byte, create bool) {
	b.inflight++
	b.requests.Add(1)
	go func() {
		defer b.requests.Done()
		resp, err := b.post(body)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.inflight--
		if err == nil {
			err = b.received(resp, create)
		}
		if err != nil && !b.closed && b.err == nil {
			b.err = err
			b.signal()
		}
		b.pump()
	}()
}

func (b *boshConn) post(body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("BOSH: HTTP %s: %.200s", resp.Status, data)
	}
	return data, nil
}

// received takes a response apart: its attributes (the session's sid at
// creation, a terminate) and its payload, which becomes input. Called with
// mu held.
func (b *boshConn) received(data []byte, create bool) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("BOSH response %.200q: %w", data, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
	}
	if start.Name.Local != "body" {
		return fmt.Errorf("BOSH response is not a <body/>: %.200q", data)
	}
	attr := func(name string) string {
		for _, a := range start.Attr {
			if a.Name.Local == name && a.Name.Space == "" {
				return a.Value
			}
		}
		return ""
	}
	if create {
		if b.sid = attr("sid"); b.sid == "" && attr("type") != "terminate" {
			return fmt.Errorf("BOSH session creation without a sid: %.200q", data)
		}
	}
	off := int(d.InputOffset())
	if end := bytes.LastIndex(data, []byte("</body>")); end >= off {
		b.in = append(b.in, data[off:end]...)
	}
	if attr("type") == "terminate" {
		if c := attr("condition"); c != "" && c != "remote-stream-error" && c != "system-shutdown" && !b.termSent {
			// A binding error, with no stream error of its own to read.
			b.in = append(b.in, "<stream:error><"+c+" xmlns='"+nsHTTPBind+"'/></stream:error>"...)
		}
		b.in = append(b.in, "</stream:stream>"...)
		b.eof = true
	}
	b.signal()
	return nil
}

func (b *boshConn) signal() {
	select {
	case b.readable <- struct{}{}:
	default:
	}
}

func (b *boshConn) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if len(b.in) > 0 {
			n := copy(p, b.in)
			b.in = b.in[n:]
			if len(b.in) == 0 {
				b.in = nil
			}
			b.mu.Unlock()
			return n, nil
		}
		closed, eof, err, dl := b.closed, b.eof, b.err, b.readDL
		b.mu.Unlock()
		switch {
		case closed:
			return 0, net.ErrClosed
		case eof:
			return 0, io.EOF
		case err != nil:
			return 0, err
		}
		if dl.IsZero() {
			<-b.readable
			continue
		}
		wait := time.Until(dl)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(wait)
		select {
		case <-b.readable:
			t.Stop()
		case <-t.C:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Close drops the connection as a client that vanishes does: the requests
// in flight are cut and no terminate is sent, so the server's session
// lasts until its inactivity timeout. A clean end is a written stream end
// (</stream:stream>) before Close.
func (b *boshConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.signal()
	b.mu.Unlock()
	b.cancel()
	b.requests.Wait()
	b.tr.CloseIdleConnections()
	return nil
}

// closeAfterTerminate waits (up to d) for the terminate request to be
// answered, so that a clean end reaches the server, then closes.
func (b *boshConn) closeAfterTerminate(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		done := b.eof || b.err != nil || b.closed || (b.termSent && b.inflight == 0)
		b.mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return b.Close()
}

func (b *boshConn) LocalAddr() net.Addr  { return b.local }
func (b *boshConn) RemoteAddr() net.Addr { return b.remote }
func (b *boshConn) SetDeadline(t time.Time) error {
	return b.SetReadDeadline(t)
}
func (b *boshConn) SetReadDeadline(t time.Time) error {
	b.mu.Lock()
	b.readDL = t
	b.mu.Unlock()
	b.signal() // a waiting Read looks at the new deadline
	return nil
}
func (b *boshConn) SetWriteDeadline(time.Time) error { return nil }

var errBOSHURL = errors.New("-bosh-url is needed for BOSH clients")

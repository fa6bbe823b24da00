package upload

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// fileCSP forbids what a served file could run: an HTML or SVG file opened
// in the browser shows as a sandboxed document without scripts.
const fileCSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"

// ServeHTTP implements http.Handler for Path: OPTIONS (CORS preflight), PUT
// of a slot's file, GET and HEAD of a stored one (XEP-0363 §4, §6).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	tok, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, Path), "/")
	if !ok || !validToken(tok) || name == "" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		if r.Header.Get("Origin") != "" && !s.Policy.OriginAllowed(r) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.put(w, r, tok, name)
	case http.MethodGet, http.MethodHead:
		s.get(w, r, tok, name)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// cors lets pages of the allowed origins (the web listener's policy) put
// and read files: web clients upload from the page.
func (s *Service) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin == "" || !s.Policy.OriginAllowed(r) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		h.Set("Access-Control-Max-Age", "7200")
	}
}

// slot looks up the slot a URL names; nil (after answering 404) when there
// is none, or the name is not the slot's.
func (s *Service) slot(w http.ResponseWriter, r *http.Request, tok, name string) *storage.UploadSlot {
	u, err := s.Store.UploadSlot(r.Context(), tok)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.Filename != name {
		http.NotFound(w, r)
		return nil
	}
	if err != nil {
		s.log.Error("reading an upload slot", "err", err)
		http.Error(w, "storage error", http.StatusInternalServerError)
		return nil
	}
	return &u
}

// put stores the body as the slot's file: only for a slot that is unused
// and whose deadline has not passed when the PUT starts, with exactly the
// size and the type the slot was given for, arriving no slower than the
// minimum rate. One PUT per slot runs at a time on a node (another gets
// 409). The body goes to a temporary file first, deleted if the PUT fails;
// the slot is claimed once the whole file is there, so that of two PUTs at
// once on different nodes one stores the file and the other is refused. A
// PUT that fails leaves the slot usable until it expires, so that the
// client may try again (as Prosody's mod_http_file_share does; ejabberd's
// mod_http_upload spends the slot when the PUT starts).
func (s *Service) put(w http.ResponseWriter, r *http.Request, tok, name string) {
	start := s.now()
	u := s.slot(w, r, tok, name)
	if u == nil {
		return
	}
	if !u.Uploaded.IsZero() || !start.Before(u.Expires) {
		http.Error(w, "this slot is used or has expired", http.StatusForbidden)
		return
	}
	if !s.beginPut(tok) {
		http.Error(w, "an upload to this slot is under way", http.StatusConflict)
		return
	}
	defer s.endPut(tok)
	switch {
	case r.ContentLength > u.Size:
		http.Error(w, "larger than the slot's size", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength >= 0 && r.ContentLength < u.Size:
		http.Error(w, "Content-Length is not the slot's size", http.StatusBadRequest)
		return
	}
	if u.ContentType != "" && !sameType(r.Header.Get("Content-Type"), u.ContentType) {
		http.Error(w, "Content-Type is not the slot's", http.StatusBadRequest)
		return
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		s.log.Error("upload folder", "dir", s.Dir, "err", err)
		http.Error(w, "storage error", http.StatusInternalServerError)
		return
	}
	tmp, err := os.CreateTemp(s.Dir, tmpPrefix+"*")
	if err != nil {
		s.log.Error("creating an upload file", "dir", s.Dir, "err", err)
		http.Error(w, "storage error", http.StatusInternalServerError)
		return
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	// One byte more than the slot's size shows a body that is too long.
	n, err := io.Copy(tmp, io.LimitReader(s.paced(w, r.Body), u.Size+1))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The read deadline stays in the past: net/http reads no more of
		// this body, and closes the connection.
		s.log.Info("upload too slow", "jid", u.Owner, "bytes", n, "of", u.Size, "remote", r.RemoteAddr)
		http.Error(w, "the file arrived too slowly", http.StatusRequestTimeout)
		return
	case errors.Is(err, http.ErrNotSupported):
		s.log.Error("upload refused", "err", err)
		http.Error(w, "upload failed", http.StatusInternalServerError)
		return
	case err != nil:
		s.log.Info("upload failed", "err", err)
		http.Error(w, "upload failed", http.StatusBadRequest)
		return
	case n > u.Size:
		http.Error(w, "larger than the slot's size", http.StatusRequestEntityTooLarge)
		return
	case n < u.Size:
		http.Error(w, "shorter than the slot's size", http.StatusBadRequest)
		return
	}
	if err := s.Store.MarkUploaded(r.Context(), tok, start); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			http.Error(w, "this slot is used or has expired", http.StatusForbidden)
			return
		}
		s.log.Error("marking an upload slot used", "err", err)
		http.Error(w, "storage error", http.StatusInternalServerError)
		return
	}
	if err := os.Rename(tmp.Name(), s.file(tok)); err != nil {
		s.log.Error("storing an uploaded file", "err", err)
		s.Store.DeleteUploadSlot(r.Context(), tok)
		http.Error(w, "storage error", http.StatusInternalServerError)
		return
	}
	s.log.Debug("file uploaded", "jid", u.Owner, "bytes", u.Size)
	w.WriteHeader(http.StatusCreated)
}

// beginPut marks tok's PUT under way; false if one is already.
func (s *Service) beginPut(tok string) bool {
	s.putMu.Lock()
	defer s.putMu.Unlock()
	if s.putting[tok] {
		return false
	}
	if s.putting == nil {
		s.putting = make(map[string]bool)
	}
	s.putting[tok] = true
	return true
}

func (s *Service) endPut(tok string) {
	s.putMu.Lock()
	delete(s.putting, tok)
	s.putMu.Unlock()
}

// paced is body read at no less than MinPutRate on average after
// PutGrace: before each read the connection's read deadline is set to when
// the bytes read so far should have been followed by more. A trickle is cut
// within about PutGrace; a silent client exactly then.
func (s *Service) paced(w http.ResponseWriter, body io.Reader) io.Reader {
	if s.MinPutRate < 0 {
		return body
	}
	return &pacedReader{r: body, rc: http.NewResponseController(w), start: time.Now(),
		grace: s.PutGrace, rate: float64(s.MinPutRate)}
}

type pacedReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  float64 // bytes per second
	n     int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	due := p.start.Add(p.grace + time.Duration(float64(p.n)/p.rate*float64(time.Second)))
	if err := p.rc.SetReadDeadline(due); err != nil {
		// A ResponseWriter without deadlines (a wrapper that hides
		// them): refuse rather than wait without a bound.
		return 0, fmt.Errorf("bounding the PUT's pace: %w", err)
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err == io.EOF {
		p.rc.SetReadDeadline(time.Time{}) // the connection may serve more requests
	}
	return n, err
}

// tmpPrefix starts the names of files being uploaded.
const tmpPrefix = "tmp-"

// file is where the file of a slot is kept.
func (s *Service) file(tok string) string { return filepath.Join(s.Dir, tok) }

// sameType compares media types without their parameters' spelling.
func sameType(got, want string) bool {
	g, gp, err := mime.ParseMediaType(got)
	if err != nil {
		return false
	}
	return mime.FormatMediaType(g, gp) == want || g == want
}

// get serves a stored file with the type it was announced with, inline only
// for images, sound and video, and never as something the browser runs.
func (s *Service) get(w http.ResponseWriter, r *http.Request, tok, name string) {
	u := s.slot(w, r, tok, name)
	if u == nil {
		return
	}
	if u.Uploaded.IsZero() {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(s.file(tok))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	ctype := u.ContentType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", fileCSP)
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.maxAge().Seconds())))
	disposition := "attachment"
	if mt, _, _ := mime.ParseMediaType(ctype); inline(mt) {
		disposition = "inline"
	}
	if cd := mime.FormatMediaType(disposition, map[string]string{"filename": u.Filename}); cd != "" {
		disposition = cd
	}
	h.Set("Content-Disposition", disposition)
	http.ServeContent(w, r, "", u.Uploaded, f)
}

// inline reports whether a browser may show a file of media type mt in the
// page: images (not SVG, a document that can hold scripts), sound, video.
func inline(mt string) bool {
	switch {
	case mt == "image/svg+xml":
		return false
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"):
		return true
	}
	return false
}

// maxAge is how long a cache may keep a file: its lifetime, or a day when
// files are kept for ever.
func (s *Service) maxAge() time.Duration {
	if s.FileLifetime > 0 {
		return s.FileLifetime
	}
	return 24 * time.Hour
}

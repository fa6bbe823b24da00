package upload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Namespaces of XEP-0363 and the discovery it answers (XEP-0030).
const (
	NS      = "urn:xmpp:http:upload:0"
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
)

// Path is where the web listener serves uploads: Path + token + "/" + name.
const Path = "/upload/"

// Defaults of the Service's settings.
const (
	DefaultMaxFileSize  = 20 << 20 // 20 MiB
	DefaultQuota        = 1 << 30  // 1 GiB per account
	DefaultFileLifetime = 30 * 24 * time.Hour
	// DefaultSlotLifetime is how long after the slot was given its PUT
	// may start.
	DefaultSlotLifetime  = 10 * time.Minute
	DefaultSweepInterval = time.Hour
	// DefaultMinPutRate and DefaultPutGrace: a PUT's body must arrive at
	// 8 KiB/s on average after the first 30 s (a 20 MiB file within about
	// 43 minutes).
	DefaultMinPutRate = 8 << 10
	DefaultPutGrace   = 30 * time.Second
)

// maxFilename bounds a file name in bytes, after sanitising.
const maxFilename = 200

// Service is the upload service. It is an xmpp.Module that adds itself as
// the component for Domain and serves Path on the web listener.
type Service struct {
	// Domain is the service's domain; default "upload." + the server's.
	Domain string
	// Store keeps the slots; required.
	Store storage.Uploads
	// Dir is the folder the files are kept in; required.
	Dir string
	// PublicURL is the scheme, host and port clients reach the web
	// listener at ("https://chat.example.com", the proxy's address when
	// there is one: docs/web.md); default "https://" + the server's
	// domain.
	PublicURL string
	// MaxFileSize bounds one file, in bytes; zero means DefaultMaxFileSize.
	MaxFileSize int64
	// Quota bounds the bytes an account stores (its files until they
	// expire, and the slots it has not used yet); zero means DefaultQuota,
	// negative no limit.
	Quota int64
	// FileLifetime is how long a file is kept; zero means
	// DefaultFileLifetime, negative for ever.
	FileLifetime time.Duration
	// SlotLifetime is how long a slot waits for its PUT to start; zero
	// means DefaultSlotLifetime.
	SlotLifetime time.Duration
	// SweepInterval is how often expired files and slots are deleted;
	// zero means DefaultSweepInterval.
	SweepInterval time.Duration
	// MinPutRate (bytes per second) and PutGrace bound how slowly a PUT's
	// body may arrive: by PutGrace + n/MinPutRate after the PUT began, its
	// first n bytes must be there, else the PUT fails (408) and what came
	// is deleted; the slot stays usable until it expires. Zero means
	// DefaultMinPutRate and DefaultPutGrace; a negative MinPutRate, no
	// bound.
	MinPutRate int64
	PutGrace   time.Duration
	// Policy decides which web pages may upload (CORS); nil is the zero
	// WebPolicy. It should be the web listener's.
	Policy *xmpp.WebPolicy

	srv  *xmpp.Server
	log  *slog.Logger
	stop chan struct{}
	wg   sync.WaitGroup
	// putting holds the tokens of the slots whose PUT is under way on this
	// node: one at a time per slot.
	putMu   sync.Mutex
	putting map[string]bool
	// now is time.Now; tests move it.
	now func() time.Time
}

// Register implements xmpp.Module.
func (s *Service) Register(srv *xmpp.Server) {
	s.srv = srv
	s.log = srv.Log().With("module", "upload")
	if s.Domain == "" {
		s.Domain = "upload." + srv.Domain
	}
	if s.PublicURL == "" {
		s.PublicURL = "https://" + srv.Domain
	}
	s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")
	if s.MaxFileSize <= 0 {
		s.MaxFileSize = DefaultMaxFileSize
	}
	if s.Quota == 0 {
		s.Quota = DefaultQuota
	}
	if s.FileLifetime == 0 {
		s.FileLifetime = DefaultFileLifetime
	}
	if s.SlotLifetime <= 0 {
		s.SlotLifetime = DefaultSlotLifetime
	}
	if s.SweepInterval <= 0 {
		s.SweepInterval = DefaultSweepInterval
	}
	if s.MinPutRate == 0 {
		s.MinPutRate = DefaultMinPutRate
	}
	if s.PutGrace <= 0 {
		s.PutGrace = DefaultPutGrace
	}
	if s.Policy == nil {
		s.Policy = &xmpp.WebPolicy{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	srv.AddComponent(s.Domain, s)
	srv.HandleHTTP(Path, s)
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go s.sweeper(srv.Context())
	srv.OnShutdown(func() {
		close(s.stop)
		s.wg.Wait()
	})
}

// HandleStanza implements xmpp.Component: discovery and slot requests to
// the service's domain.
func (s *Service) HandleStanza(ctx context.Context, st *xmpp.Element, to jid.JID, _ *xmpp.Session) {
	typ := st.Get("type")
	if st.Local != "iq" || (typ != "get" && typ != "set") {
		return
	}
	var q *xmpp.Element
	if els := st.Elements(); len(els) == 1 {
		q = els[0]
	}
	switch {
	case to.Localpart() != "" || to.Resourcepart() != "":
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ItemNotFound})
	case q == nil || typ != "get":
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable})
	case q.Space == NSInfo && q.Local == "query" && q.Get("node") == "":
		s.send(ctx, xmpp.ResultReply(st, s.info()))
	case q.Space == NSItems && q.Local == "query" && q.Get("node") == "":
		s.send(ctx, xmpp.ResultReply(st, xmpp.NewElement(NSItems, "query")))
	case q.Space == NSInfo || q.Space == NSItems:
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ItemNotFound})
	case q.Space == NS && q.Local == "request":
		from, err := jid.Parse(st.Get("from"))
		if err != nil {
			return
		}
		slot, serr := s.request(ctx, from, q)
		if serr != nil {
			s.reply(ctx, st, *serr)
			return
		}
		s.send(ctx, xmpp.ResultReply(st, slot))
	default:
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable})
	}
}

// info is the service's disco#info: XEP-0363 §4, with the maximum file
// size in an extended-information form (XEP-0128).
func (s *Service) info() *xmpp.Element {
	q := xmpp.NewElement(NSInfo, "query")
	q.Add(xmpp.NewElement(NSInfo, "identity", "category", "store", "type", "file", "name", "HTTP File Upload"))
	for _, f := range []string{NSInfo, NS} {
		q.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
	}
	fm := &form.Form{Type: form.TypeResult, FormType: NS}
	fm.AddField(form.Field{Var: "max-file-size", Label: "Maximum file size in bytes",
		Values: []string{strconv.FormatInt(s.MaxFileSize, 10)}})
	return q.Add(fm.Element())
}

// request answers a slot request (XEP-0363 §4): checks, then a slot stored
// with the account's quota checked in the same write.
func (s *Service) request(ctx context.Context, from jid.JID, q *xmpp.Element) (*xmpp.Element, *xmpp.StanzaError) {
	if from.Domainpart() != s.srv.Domain || from.Localpart() == "" {
		return nil, &xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "only accounts of " + s.srv.Domain + " may upload here"}
	}
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size <= 0 {
		return nil, &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "size must be a positive number of bytes"}
	}
	if size > s.MaxFileSize {
		return nil, s.tooLarge()
	}
	name, ok := sanitise(q.Get("filename"))
	if !ok {
		return nil, &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "no usable file name"}
	}
	ctype := strings.TrimSpace(q.Get("content-type"))
	if ctype != "" {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			return nil, &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "content-type is not a media type"}
		}
		ctype = mime.FormatMediaType(mt, params)
	}
	now := s.now()
	slot := storage.UploadSlot{Token: token(), Owner: from.Bare().String(), Filename: name, Size: size,
		ContentType: ctype, Created: now, Expires: now.Add(s.SlotLifetime)}
	quota := max(s.Quota, 0)
	if err := s.Store.PutUploadSlot(ctx, slot, quota, now); err != nil {
		if errors.Is(err, storage.ErrLimit) {
			return nil, &xmpp.StanzaError{Type: xmpp.Wait, Condition: xmpp.ResourceConstraintC,
				Text: "Quota reached: this account may keep " + strconv.FormatInt(quota, 10) + " bytes of files"}
		}
		s.log.Error("storing an upload slot", "jid", slot.Owner, "err", err)
		return nil, &xmpp.StanzaError{Condition: xmpp.InternalError}
	}
	u := s.url(slot)
	el := xmpp.NewElement(NS, "slot")
	el.Add(xmpp.NewElement(NS, "put", "url", u), xmpp.NewElement(NS, "get", "url", u))
	return el, nil
}

// tooLarge is XEP-0363 §5's error for a file over the limit.
func (s *Service) tooLarge() *xmpp.StanzaError {
	app := xmpp.NewElement(NS, "file-too-large")
	app.Add(xmpp.NewElement(NS, "max-file-size").Add(xmpp.Text(strconv.FormatInt(s.MaxFileSize, 10))))
	return &xmpp.StanzaError{Type: xmpp.Modify, Condition: xmpp.NotAcceptable,
		Text: "File too large. The maximum file size is " + strconv.FormatInt(s.MaxFileSize, 10) + " bytes", App: app}
}

// url is where the slot's file is put and got.
func (s *Service) url(u storage.UploadSlot) string {
	return s.PublicURL + Path + u.Token + "/" + url.PathEscape(u.Filename)
}

// tokenBytes of randomness make a token: 192 bits, unguessable.
const tokenBytes = 24

// token is a slot's random path component (base64url, 32 characters).
func token() string {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// validToken reports whether t could be a token, before it is looked up
// or used as a file name.
func validToken(t string) bool {
	if len(t) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// sanitise makes a client's file name safe to put in a URL and a
// Content-Disposition: the last part of a path, without control or
// formatting characters, leading dots and surrounding spaces, at most
// maxFilename bytes. False when nothing usable is left.
func sanitise(name string) (string, bool) {
	if !utf8.ValidString(name) {
		return "", false
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	for len(name) > maxFilename {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	name = strings.TrimSpace(name)
	return name, name != ""
}

func (s *Service) send(ctx context.Context, el *xmpp.Element) {
	s.srv.Router().Route(ctx, el, nil)
}

func (s *Service) reply(ctx context.Context, st *xmpp.Element, e xmpp.StanzaError) {
	s.send(ctx, xmpp.ErrorReply(st, e))
}

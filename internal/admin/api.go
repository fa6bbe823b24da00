package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Prefix is where the API is served.
const Prefix = "/api/v1"

// maxBody bounds a request's JSON body.
const maxBody = 1 << 20

//go:embed openapi.json
var openAPI []byte

// Tokens checks bearer tokens.
type Tokens interface {
	// Check returns the name of the token, or an error when it is not a
	// valid token (storage.ErrNotFound for an unknown one).
	Check(ctx context.Context, token string) (name string, err error)
}

// API is the admin HTTP API of one server.
type API struct {
	// Server is the running server: sessions, routing, the module hooks.
	Server *xmpp.Server
	// Store is the server's storage.
	Store storage.Store
	// Tokens authorises requests; with nil every request is refused.
	Tokens Tokens
	// Log logs every change with the name of the token that made it.
	Log *slog.Logger
	// Rooms is the multi-user chat service whose rooms the rooms area
	// manages and messages go into; nil: the one among Server.Modules,
	// and without one the rooms area answers 404.
	Rooms *muc.Service
	// Cluster asks the other nodes of a cluster about their sessions;
	// nil: the one among Server.Modules, and without one the API acts on
	// this node's sessions only.
	Cluster *Cluster
	// Areas are the API's parts (accounts, sessions, rooms, ...); each
	// adds its routes. Set by New.
	areas []area
}

// An area is one part of the API, in a file of its own.
type area interface {
	routes() []route
}

// A route is one operation: a method and a net/http pattern below Prefix
// ("GET /accounts/{jid}"), and its handler. change marks an operation
// that changes something, logged with the token's name.
type route struct {
	method, path string
	change       bool
	h            func(w http.ResponseWriter, r *http.Request) error
}

// Handler returns the API, to be mounted at Prefix+"/" on a mux (the
// patterns include Prefix).
func (a *API) Handler() http.Handler {
	if a.Log == nil {
		a.Log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Prefix+"/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	for _, rt := range a.allRoutes() {
		mux.Handle(rt.method+" "+Prefix+rt.path, a.wrap(rt))
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Message: "no such operation: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// allRoutes lists every area's routes.
func (a *API) allRoutes() []route {
	var all []route
	for _, ar := range a.parts() {
		all = append(all, ar.routes()...)
	}
	return all
}

type tokenKey struct{}

// TokenName returns the name of the token that authorised r.
func TokenName(ctx context.Context) string {
	n, _ := ctx.Value(tokenKey{}).(string)
	return n
}

// wrap authorises a request, runs the route's handler, writes its error,
// and logs a change.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, err := a.authorise(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="xmppd"`)
			writeError(w, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, name))
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		err = rt.h(w, r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				a.Log.Error("admin API", "method", r.Method, "path", r.URL.Path, "token", name, "err", err)
				err = &Error{Status: http.StatusInternalServerError, Message: "internal error"}
			}
			writeError(w, err)
		}
		if rt.change {
			status := http.StatusOK
			var e *Error
			if errors.As(err, &e) {
				status = e.Status
			}
			a.Log.Info("admin change", "method", r.Method, "path", r.URL.Path, "token", name, "status", status)
		}
	})
}

// authorise checks the bearer token; an *Error with 401 when it fails.
func (a *API) authorise(r *http.Request) (string, error) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		return "", &Error{Status: http.StatusUnauthorized, Message: "an Authorization: Bearer token is required"}
	}
	if a.Tokens == nil {
		return "", &Error{Status: http.StatusUnauthorized, Message: "no API tokens are configured"}
	}
	name, err := a.Tokens.Check(r.Context(), token)
	if errors.Is(err, storage.ErrNotFound) {
		return "", &Error{Status: http.StatusUnauthorized, Message: "unknown or revoked token"}
	}
	if err != nil {
		return "", err
	}
	return name, nil
}

// An Error is an API error: its HTTP status, and for a 400 the field of
// the request that is wrong.
type Error struct {
	Status  int    `json:"-"`
	Field   string `json:"field,omitempty"`
	Message string `json:"error"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%d: %s: %s", e.Status, e.Field, e.Message)
	}
	return fmt.Sprintf("%d: %s", e.Status, e.Message)
}

// invalid is a 400 naming field.
func invalid(field, format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// notFound is a 404.
func notFound(format string, args ...any) error {
	return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf(format, args...)}
}

// conflict is a 409.
func conflict(format string, args ...any) error {
	return &Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Message: "internal error"}
	}
	writeJSON(w, e.Status, e)
}

// writeJSON writes v as the response with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads the request's JSON body into v: unknown fields, trailing
// data and a body too large are 400s naming what is wrong.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &te):
			return invalid(te.Field, "must be a %s", te.Type)
		case errors.As(err, &mb):
			return invalid("", "the body is larger than %d bytes", mb.Limit)
		case errors.Is(err, io.EOF):
			return invalid("", "a JSON body is required")
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return invalid(strings.Trim(f, `"`), "unknown field")
		}
		return invalid("", "not valid JSON: %v", err)
	}
	if d.More() {
		return invalid("", "one JSON value is expected")
	}
	return nil
}

// A Page is a list with the cursor of the next page ("" on the last).
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Paging limits.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// paging reads ?cursor= and ?limit= (1..1000, default 100).
func paging(r *http.Request) (cursor string, limit int, err error) {
	cursor = r.URL.Query().Get("cursor")
	limit = defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return "", 0, invalid("limit", "must be a number from 1 to %d", maxLimit)
		}
		limit = n
	}
	return cursor, limit, nil
}

// pageOf pages a sorted list of keys: those after cursor, at most limit,
// and the cursor of the next page.
func pageOf(keys []string, cursor string, limit int) ([]string, string) {
	i, _ := slices.BinarySearch(keys, cursor)
	if i < len(keys) && keys[i] == cursor {
		i++
	}
	end := min(i+limit, len(keys))
	next := ""
	if end < len(keys) {
		next = keys[end-1]
	}
	return keys[i:end], next
}

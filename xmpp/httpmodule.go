package xmpp

import "net/http"

// HandleHTTP serves pattern (as http.ServeMux reads it, "/upload/") on the
// web listener, for a module with an HTTP side, such as the upload
// service's PUT and GET. Call it from Register; the web listener's own
// paths (/ws, /http-bind, /chat/) take precedence.
func (s *Server) HandleHTTP(pattern string, h http.Handler) {
	s.setup()
	s.httpMux.Handle(pattern, h)
}

// ModuleHTTP is the handler for what modules serve over HTTP; it answers
// 404 for paths no module registered. The web listener mounts it.
func (s *Server) ModuleHTTP() http.Handler {
	s.setup()
	return s.httpMux
}

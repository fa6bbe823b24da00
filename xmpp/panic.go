package xmpp

import (
	"runtime/debug"
)

// caught is deferred by every goroutine that serves a connection. A panic
// there is a defect reached by what one peer sent (FuzzSCRAM found one in
// the SCRAM parser): it is logged with its stack and ends that connection
// alone, as net/http does for its handlers, instead of the process and every
// session in it. When err is not nil it is set to <internal-server-error/>,
// for the caller's usual ending of the stream.
func (s *Server) caught(where, remote string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.log.Error("panic while serving a connection; that connection is closed", "where", where, "remote", remote, "panic", r, "stack", string(debug.Stack()))
	if err != nil {
		*err = StreamError{Condition: InternalServerError}
	}
}

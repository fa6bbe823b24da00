package bosh

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"

	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0124 and XEP-0206.
const (
	NS      = "http://jabber.org/protocol/httpbind"
	NSXBOSH = "urn:xmpp:xbosh"
	nsXML   = "http://www.w3.org/XML/1998/namespace"
)

// Version is the XEP-0124 version spoken.
const Version = "1.11"

// Condition is a terminal binding condition (XEP-0124 §17.2).
type Condition string

// The conditions of XEP-0124 §17.2.
const (
	BadRequest             Condition = "bad-request"
	HostGone               Condition = "host-gone"
	HostUnknown            Condition = "host-unknown"
	ImproperAddressing     Condition = "improper-addressing"
	InternalServerError    Condition = "internal-server-error"
	ItemNotFound           Condition = "item-not-found"
	OtherRequest           Condition = "other-request"
	PolicyViolation        Condition = "policy-violation"
	RemoteConnectionFailed Condition = "remote-connection-failed"
	RemoteStreamError      Condition = "remote-stream-error"
	SeeOtherURI            Condition = "see-other-uri"
	SystemShutdown         Condition = "system-shutdown"
	UndefinedCondition     Condition = "undefined-condition"
)

// legacyStatus is the HTTP status a client older than XEP-0124 1.6 expects
// instead of a terminate body (§17.1).
var legacyStatus = map[Condition]int{
	BadRequest:      400,
	PolicyViolation: 403,
	ItemNotFound:    404,
}

// A body is one parsed request <body/>.
type body struct {
	attr map[string]string
	// payload holds the child elements as the client sent them.
	payload [][]byte
}

var errNotBody = errors.New("bosh: the request is not a <body/> in " + NS)

// parseBody reads a request; any XML error, or a root that is not <body/>,
// is a bad request.
func parseBody(data []byte) (*body, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	b := &body{attr: make(map[string]string)}
	depth := 0
	seen := false
	var from int64
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			if depth == 0 && seen && errors.Is(err, io.EOF) {
				return b, nil
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if seen || t.Name.Space != NS || t.Name.Local != "body" {
					return nil, errNotBody
				}
				if err := xmpp.CheckStartTag(t); err != nil {
					return nil, err
				}
				seen = true
				for _, a := range t.Attr {
					switch a.Name.Space {
					case "":
						b.attr[a.Name.Local] = a.Value
					case NSXBOSH:
						b.attr["xmpp:"+a.Name.Local] = a.Value
					case nsXML:
						b.attr["xml:"+a.Name.Local] = a.Value
					}
				}
			} else if depth == 1 {
				from = off
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 1 {
				el := bytes.TrimLeft(data[from:d.InputOffset()], " \t\r\n")
				b.payload = append(b.payload, el)
			}
		case xml.CharData:
			if depth == 1 && len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("bosh: text in <body/>")
			}
		case xml.Directive, xml.ProcInst, xml.Comment:
			if depth > 0 {
				return nil, errors.New("bosh: restricted XML in <body/>")
			}
		}
	}
}

func (b *body) int(name string) (int64, bool) {
	v, ok := b.attr[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// A response is a <body/> being built.
type response struct{ b []byte }

func newResponse() *response {
	r := &response{b: make([]byte, 0, 512)}
	r.b = append(r.b, `<body xmlns="`+NS+`" xmlns:stream="`+xmpp.NSStream+`"`...)
	return r
}

func (r *response) attr(name, value string) {
	r.b = append(r.b, ' ')
	r.b = append(r.b, name...)
	r.b = append(r.b, `="`...)
	r.b = xmpp.AppendEscaped(r.b, value)
	r.b = append(r.b, '"')
}

// close ends the body with the payload.
func (r *response) close(payload [][]byte) []byte {
	if len(payload) == 0 {
		return append(r.b, "/>"...)
	}
	r.b = append(r.b, '>')
	for _, p := range payload {
		r.b = append(r.b, p...)
	}
	return append(r.b, "</body>"...)
}

// terminateBody is a terminate response with an optional condition.
func terminateBody(cond Condition, payload ...[]byte) []byte {
	r := newResponse()
	r.attr("type", "terminate")
	if cond != "" {
		r.attr("condition", string(cond))
	}
	return r.close(payload)
}

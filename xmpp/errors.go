package xmpp

// Namespaces of RFC 6120 and RFC 6121 that the core speaks.
const (
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSStream  = "http://etherx.jabber.org/streams"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	NSBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession = "urn:ietf:params:xml:ns:xmpp-session"
	NSRoster  = "jabber:iq:roster"
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
)

// StreamCondition is a stream error condition of RFC 6120 §4.9.3.
type StreamCondition string

// The stream error conditions xmppd sends.
const (
	BadFormat            StreamCondition = "bad-format"
	Conflict             StreamCondition = "conflict"
	ConnectionTimeout    StreamCondition = "connection-timeout"
	HostUnknown          StreamCondition = "host-unknown"
	ImproperAddressing   StreamCondition = "improper-addressing"
	InternalServerError  StreamCondition = "internal-server-error"
	InvalidFrom          StreamCondition = "invalid-from"
	InvalidNamespace     StreamCondition = "invalid-namespace"
	NotAuthorized        StreamCondition = "not-authorized"
	NotWellFormed        StreamCondition = "not-well-formed"
	PolicyViolation      StreamCondition = "policy-violation"
	ResourceConstraint   StreamCondition = "resource-constraint"
	RestrictedXML        StreamCondition = "restricted-xml"
	SystemShutdown       StreamCondition = "system-shutdown"
	UndefinedCondition   StreamCondition = "undefined-condition"
	UnsupportedStanza    StreamCondition = "unsupported-stanza-type"
	UnsupportedVersion   StreamCondition = "unsupported-version"
	StreamInvalidXML     StreamCondition = "invalid-xml"
	StreamUnsupportedEnc StreamCondition = "unsupported-encoding"
)

// SASLCondition is a SASL failure condition of RFC 6120 §6.5 that xmppd
// writes itself (mellium writes the plain <not-authorized/> of a wrong
// password).
type SASLCondition string

// The SASL failure conditions xmppd writes.
const (
	SASLNotAuthorized        SASLCondition = "not-authorized"         // §6.5.10
	SASLTemporaryAuthFailure SASLCondition = "temporary-auth-failure" // §6.5.9
)

// StreamError is a stream-level error: it ends the stream (RFC 6120 §4.9).
type StreamError struct {
	Condition StreamCondition
	Text      string
}

func (e StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + string(e.Condition) + ": " + e.Text
	}
	return "stream error: " + string(e.Condition)
}

// Append serialises the <stream:error/> element.
func (e StreamError) Append(b []byte) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, e.Condition...)
	b = append(b, ` xmlns="`+NSStreams+`"/>`...)
	if e.Text != "" {
		b = append(b, `<text xmlns="`+NSStreams+`" xml:lang="en">`...)
		b = appendEscaped(b, e.Text)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error>"...)
}

// ErrorType is a stanza error type of RFC 6120 §8.3.2.
type ErrorType string

// Stanza error types.
const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Condition is a stanza error condition of RFC 6120 §8.3.3.
type Condition string

// Stanza error conditions, each with the type RFC 6120 §8.3.3 gives it.
const (
	BadRequest            Condition = "bad-request"
	ConflictCond          Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	InternalError         Condition = "internal-server-error"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	NotAuthorizedCond     Condition = "not-authorized"
	PolicyViolationCond   Condition = "policy-violation"
	RecipientUnavailable  Condition = "recipient-unavailable"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerNotFound  Condition = "remote-server-not-found"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraintC   Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	SubscriptionRequired  Condition = "subscription-required"
	UndefinedCond         Condition = "undefined-condition"
	UnexpectedRequest     Condition = "unexpected-request"
)

var defaultErrorType = map[Condition]ErrorType{
	BadRequest:            Modify,
	ConflictCond:          Cancel,
	FeatureNotImplemented: Cancel,
	Forbidden:             Auth,
	InternalError:         Cancel,
	ItemNotFound:          Cancel,
	JIDMalformed:          Modify,
	NotAcceptable:         Modify,
	NotAllowed:            Cancel,
	NotAuthorizedCond:     Auth,
	PolicyViolationCond:   Modify,
	RecipientUnavailable:  Wait,
	RegistrationRequired:  Auth,
	RemoteServerNotFound:  Cancel,
	RemoteServerTimeout:   Wait,
	ResourceConstraintC:   Wait,
	ServiceUnavailable:    Cancel,
	SubscriptionRequired:  Auth,
	UndefinedCond:         Cancel,
	UnexpectedRequest:     Wait,
}

// StanzaError is an error returned in a stanza of type "error".
type StanzaError struct {
	Type      ErrorType // empty: the condition's usual type
	Condition Condition
	Text      string
	// App is an application-specific condition (RFC 6120 §8.3.4), such
	// as XEP-0191's <blocked/>, or nil.
	// as XEP-0363's <file-too-large/>; nil for none.
	App *Element
}

func (e StanzaError) Error() string { return "stanza error: " + string(e.Condition) }

// Element builds the <error/> child.
func (e StanzaError) Element() *Element {
	typ := e.Type
	if typ == "" {
		typ = defaultErrorType[e.Condition]
	}
	el := NewElement(NSClient, "error", "type", string(typ))
	el.Add(NewElement(NSStanzas, string(e.Condition)))
	if e.Text != "" {
		t := NewElement(NSStanzas, "text")
		t.Attr = append(t.Attr, Attr{Space: NSXML, Local: "lang", Value: "en"})
		el.Add(t.Add(Text(e.Text)))
	}
	if e.App != nil {
		el.Add(e.App)
	}
	return el
}

// ErrorReply turns a stanza into the error bounced to its sender (RFC 6120
// §8.3.1): addresses swapped, type "error", the original payload kept.
func ErrorReply(st *Element, e StanzaError) *Element {
	r := &Element{Space: st.Space, Local: st.Local}
	for _, a := range st.Attr {
		switch {
		case a.Space != "":
			r.Attr = append(r.Attr, a)
		case a.Local == "to":
			r.Attr = append(r.Attr, Attr{Local: "from", Value: a.Value})
		case a.Local == "from":
			r.Attr = append(r.Attr, Attr{Local: "to", Value: a.Value})
		case a.Local == "type":
		default:
			r.Attr = append(r.Attr, a)
		}
	}
	r.Set("type", "error")
	for _, c := range st.Children {
		if ce, ok := c.(*Element); ok && ce.Local == "error" {
			continue
		}
		r.Children = append(r.Children, c)
	}
	return r.Add(e.Element())
}

// ResultReply returns the empty result to an IQ get or set, with payload as
// its child when given.
func ResultReply(iq *Element, payload *Element) *Element {
	r := NewElement(iq.Space, "iq", "type", "result", "id", iq.Get("id"))
	if f := iq.Get("from"); f != "" {
		r.Set("to", f)
	}
	if t := iq.Get("to"); t != "" {
		r.Set("from", t)
	}
	if payload != nil {
		r.Add(payload)
	}
	return r
}

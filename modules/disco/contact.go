package disco

import (
	"errors"
	"net/url"
	"strings"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// NSServerInfo is the FORM_TYPE of the server's contact addresses
// (XEP-0157 §3, registered in XEP-0128).
const NSServerInfo = "http://jabber.org/network/serverinfo"

// Addresses are the contact addresses of XEP-0157 §3: for each role a list
// of URIs (mailto:, xmpp:, https:), in the order they are given.
type Addresses struct {
	Abuse, Admin, Feedback, Sales, Security, Support []string
}

// fields pairs each role with its field of the serverinfo form and the
// label XEP-0157 §6 registers for it.
func (a Addresses) fields() []form.Field {
	return []form.Field{
		{Var: "abuse-addresses", Label: "One or more addresses for communication related to abusive traffic", Values: a.Abuse},
		{Var: "admin-addresses", Label: "One or more addresses for communication with the service administrators", Values: a.Admin},
		{Var: "feedback-addresses", Label: "One or more addresses for customer feedback", Values: a.Feedback},
		{Var: "sales-addresses", Label: "One or more addresses for communication related to sales and marketing", Values: a.Sales},
		{Var: "security-addresses", Label: "One or more addresses for communication related to security concerns", Values: a.Security},
		{Var: "support-addresses", Label: "One or more addresses for customer support", Values: a.Support},
	}
}

// Empty reports whether no address is set.
func (a Addresses) Empty() bool {
	for _, f := range a.fields() {
		if len(f.Values) > 0 {
			return false
		}
	}
	return true
}

// CheckAddress reports why v is not a usable contact address: it must be an
// absolute URI (mailto:, xmpp:, https:) with something after its scheme.
func CheckAddress(v string) error {
	if strings.ContainsAny(v, " \t\r\n") {
		return errors.New("a URI has no spaces")
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URI")
	}
	if u.Scheme == "" {
		return errors.New("not an absolute URI (mailto:, xmpp:, https:)")
	}
	if u.Opaque == "" && u.Host == "" && u.Path == "" {
		return errors.New("nothing after the scheme")
	}
	return nil
}

// form is the XEP-0128 form that carries the addresses, nil when there is
// none: only the roles that have addresses get a field, list-multi as
// registered.
func (a Addresses) form() *xmpp.Element {
	if a.Empty() {
		return nil
	}
	fm := &form.Form{Type: form.TypeResult, FormType: NSServerInfo}
	for _, f := range a.fields() {
		if len(f.Values) > 0 {
			f.Type = form.ListMulti
			fm.AddField(f)
		}
	}
	return fm.Element()
}

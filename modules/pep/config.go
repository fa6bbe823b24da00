package pep

import (
	"fmt"
	"strconv"

	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// Form types of XEP-0060 §16.4.
const (
	FormNodeConfig     = "http://jabber.org/protocol/pubsub#node_config"
	FormPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// Node configuration fields the service keeps (XEP-0060 §16.4.4).
const (
	fieldAccess      = "pubsub#access_model"
	fieldMaxItems    = "pubsub#max_items"
	fieldPersist     = "pubsub#persist_items"
	fieldPayloads    = "pubsub#deliver_payloads"
	fieldNotify      = "pubsub#deliver_notifications"
	fieldRetract     = "pubsub#notify_retract"
	fieldDelete      = "pubsub#notify_delete"
	fieldSendLast    = "pubsub#send_last_published_item"
	fieldTitle       = "pubsub#title"
	fieldType        = "pubsub#type"
	fieldPublishMode = "pubsub#publish_model"
	fieldNotifType   = "pubsub#notification_type"
)

// Access models (XEP-0060 §4.5) this service offers.
const (
	AccessPresence  = "presence"
	AccessOpen      = "open"
	AccessWhitelist = "whitelist"
)

// Values of pubsub#send_last_published_item.
const (
	sendNever         = "never"
	sendOnSub         = "on_sub"
	sendOnSubPresence = "on_sub_and_presence"
)

// nodeConfig is a node's configuration, parsed.
type nodeConfig struct {
	access      string
	maxItems    int // 0 means "max": the service's limit
	persist     bool
	payloads    bool
	notify      bool
	retract     bool
	delete      bool
	sendLast    string
	title, typ  string
	notifHeader bool // notification_type normal rather than headline
}

// defaults is the configuration of a node created without options
// (XEP-0163 §4.2, XEP-0060 §16.4.4): contacts see it, one item is kept.
func defaults() nodeConfig {
	return nodeConfig{access: AccessPresence, maxItems: 1, persist: true, payloads: true,
		notify: true, retract: true, delete: true, sendLast: sendOnSubPresence}
}

// stored is c as storage.PEPNode.Config keeps it: every field, so that a
// change of the service's defaults does not change existing nodes.
func (c nodeConfig) stored() map[string][]string {
	max := "max"
	if c.maxItems > 0 {
		max = strconv.Itoa(c.maxItems)
	}
	nt := "headline"
	if c.notifHeader {
		nt = "normal"
	}
	m := map[string][]string{
		fieldAccess: {c.access}, fieldMaxItems: {max}, fieldPersist: {bstr(c.persist)},
		fieldPayloads: {bstr(c.payloads)}, fieldNotify: {bstr(c.notify)},
		fieldRetract: {bstr(c.retract)}, fieldDelete: {bstr(c.delete)},
		fieldSendLast: {c.sendLast}, fieldNotifType: {nt},
	}
	if c.title != "" {
		m[fieldTitle] = []string{c.title}
	}
	if c.typ != "" {
		m[fieldType] = []string{c.typ}
	}
	return m
}

func bstr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// loadConfig reads a stored configuration; fields it lacks keep their
// defaults.
func loadConfig(m map[string][]string) nodeConfig {
	c := defaults()
	for k, v := range m {
		if len(v) == 0 {
			continue
		}
		// Stored values were checked when they were set.
		_ = c.set(k, v[0], 0)
	}
	return c
}

// set changes one field from a form's value; an error names what is wrong
// with it. maxItems bounds pubsub#max_items (0: no bound).
func (c *nodeConfig) set(field, v string, maxItems int) error {
	switch field {
	case fieldAccess:
		switch v {
		case AccessPresence, AccessOpen, AccessWhitelist:
			c.access = v
		default:
			return fmt.Errorf("access model %q is not offered (presence, open, whitelist)", v)
		}
	case fieldMaxItems:
		if v == "max" {
			c.maxItems = 0
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("max_items %q is neither a positive number nor \"max\"", v)
		}
		if maxItems > 0 && n > maxItems {
			return fmt.Errorf("max_items %d is more than the %d this service keeps", n, maxItems)
		}
		c.maxItems = n
	case fieldPersist, fieldPayloads, fieldNotify, fieldRetract, fieldDelete:
		b, err := form.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		switch field {
		case fieldPersist:
			c.persist = b
		case fieldPayloads:
			c.payloads = b
		case fieldNotify:
			c.notify = b
		case fieldRetract:
			c.retract = b
		case fieldDelete:
			c.delete = b
		}
	case fieldSendLast:
		switch v {
		case sendNever, sendOnSub, sendOnSubPresence:
			c.sendLast = v
		default:
			return fmt.Errorf("send_last_published_item %q is not offered", v)
		}
	case fieldTitle:
		c.title = v
	case fieldType:
		c.typ = v
	case fieldPublishMode:
		// The owner alone publishes to a personal node (XEP-0163 §4.3).
		if v != "publishers" {
			return fmt.Errorf("publish_model %q is not offered (publishers)", v)
		}
	case fieldNotifType:
		switch v {
		case "headline":
			c.notifHeader = false
		case "normal":
			c.notifHeader = true
		default:
			return fmt.Errorf("notification_type %q is neither headline nor normal", v)
		}
	default:
		return errUnknownField
	}
	return nil
}

var errUnknownField = fmt.Errorf("unknown field")

// matches reports whether c has the value v for field: the precondition
// check of publish-options (XEP-0060 §7.1.5). "max" and the service's
// limit are the same number of items.
func (c nodeConfig) matches(field, v string, maxItems int) bool {
	probe := c
	if err := probe.set(field, v, 0); err != nil {
		return false
	}
	if field == fieldMaxItems {
		a, b := c.maxItems, probe.maxItems
		if maxItems > 0 {
			if a == 0 || a > maxItems {
				a = maxItems
			}
			if b == 0 || b > maxItems {
				b = maxItems
			}
		}
		return a == b
	}
	return probe == c
}

// apply sets every field of a submitted form (node_config or
// publish-options) on c (form.Parse keeps FORM_TYPE apart); an unknown field is an
// error only when strict (configuration; XEP-0060 §8.2.5), while
// publish-options, which may name fields this service does not keep, fail
// their precondition instead.
func (c *nodeConfig) apply(fm *form.Form, maxItems int, strict bool) error {
	for _, f := range fm.Fields {
		err := c.set(f.Var, f.Value(), maxItems)
		if err == errUnknownField && !strict {
			continue
		}
		if err != nil {
			return xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: err.Error()}
		}
	}
	return nil
}

// form is c as a node_config form (XEP-0060 §8.2.1), of type typ.
func (c nodeConfig) form(typ form.Type) *form.Form {
	fm := &form.Form{Type: typ, FormType: FormNodeConfig}
	fm.AddList(fieldAccess, "Who may subscribe and retrieve items", c.access,
		form.Option{Label: "Contacts with a presence subscription", Value: AccessPresence},
		form.Option{Label: "Anyone", Value: AccessOpen},
		form.Option{Label: "Those on the whitelist", Value: AccessWhitelist})
	max := "max"
	if c.maxItems > 0 {
		max = strconv.Itoa(c.maxItems)
	}
	fm.AddText(fieldMaxItems, "Items kept", max)
	fm.AddBool(fieldPersist, "Keep items", c.persist)
	fm.AddBool(fieldNotify, "Send notifications", c.notify)
	fm.AddBool(fieldPayloads, "Send payloads with notifications", c.payloads)
	fm.AddBool(fieldRetract, "Notify when items are retracted", c.retract)
	fm.AddBool(fieldDelete, "Notify when the node is deleted", c.delete)
	fm.AddList(fieldSendLast, "When to send the last item", c.sendLast,
		form.Option{Label: "Never", Value: sendNever},
		form.Option{Label: "On subscription", Value: sendOnSub},
		form.Option{Label: "On subscription and presence", Value: sendOnSubPresence})
	fm.AddList(fieldPublishMode, "Who may publish", "publishers",
		form.Option{Label: "The owner", Value: "publishers"})
	nt := "headline"
	if c.notifHeader {
		nt = "normal"
	}
	fm.AddList(fieldNotifType, "Message type of notifications", nt,
		form.Option{Label: "Headline", Value: "headline"}, form.Option{Label: "Normal", Value: "normal"})
	fm.AddText(fieldTitle, "Title", c.title)
	fm.AddText(fieldType, "Payload type", c.typ)
	return fm
}

package form

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xmppd/xmppd/xmpp"
)

// NS is the data forms namespace (XEP-0004 §3).
const NS = "jabber:x:data"

// FormTypeVar is the var of the hidden field that names the kind of a form
// (XEP-0068 §2).
const FormTypeVar = "FORM_TYPE"

// Type is the type of a form (XEP-0004 §3.1).
type Type string

// Form types.
const (
	TypeForm   Type = "form"   // a form to fill in
	TypeSubmit Type = "submit" // a filled-in form
	TypeCancel Type = "cancel" // the form was not filled in
	TypeResult Type = "result" // data, such as extended disco info
)

// FieldType is the type of a field (XEP-0004 §3.3).
type FieldType string

// Field types.
const (
	Boolean     FieldType = "boolean"
	Fixed       FieldType = "fixed"
	Hidden      FieldType = "hidden"
	JIDMulti    FieldType = "jid-multi"
	JIDSingle   FieldType = "jid-single"
	ListMulti   FieldType = "list-multi"
	ListSingle  FieldType = "list-single"
	TextMulti   FieldType = "text-multi"
	TextPrivate FieldType = "text-private"
	TextSingle  FieldType = "text-single"
)

// An Option is one choice of a list-single or list-multi field.
type Option struct {
	Label, Value string
}

// A Field is one field of a form. Fields a service sends carry a Label:
// XEP-0004 makes it optional, but clients have nothing else to show the
// user (some show "(null)").
type Field struct {
	Var  string
	Type FieldType // empty means text-single (XEP-0004 §3.3)
	// Label is what a client shows; Desc a longer explanation.
	Label, Desc string
	Required    bool
	Values      []string
	// Options are the choices of a list field.
	Options []Option
}

// Value is the field's first value, or "".
func (f *Field) Value() string {
	if len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

// Bool reads a boolean field's value: "1" or "true", "0" or "false"
// (XEP-0004 §3.3); a field without a value is false.
func (f *Field) Bool() (bool, error) {
	if len(f.Values) == 0 {
		return false, nil
	}
	return ParseBool(f.Values[0])
}

// ParseBool reads a value of a boolean field (XEP-0004 §3.3, xs:boolean).
func ParseBool(v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("form: %q is not a boolean", v)
}

// A Form is a data form. The zero value is an empty form of no type; set
// Type before sending it.
type Form struct {
	Type         Type
	Title        string
	Instructions string
	// FormType is the value of the hidden FORM_TYPE field, sent before
	// the other fields; empty for a form without one.
	FormType string
	Fields   []Field

	// formTypeSeen and formTypeHidden say how a parsed form gave its
	// FORM_TYPE, for Check.
	formTypeSeen, formTypeHidden bool
}

// AddField appends f and returns the form.
func (fm *Form) AddField(f Field) *Form {
	fm.Fields = append(fm.Fields, f)
	return fm
}

// AddText appends a text-single field.
func (fm *Form) AddText(name, label, value string) *Form {
	return fm.AddField(Field{Var: name, Type: TextSingle, Label: label, Values: []string{value}})
}

// AddPrivate appends a text-private field, for a password.
func (fm *Form) AddPrivate(name, label, value string) *Form {
	return fm.AddField(Field{Var: name, Type: TextPrivate, Label: label, Values: []string{value}})
}

// AddBool appends a boolean field, with the value "1" or "0".
func (fm *Form) AddBool(name, label string, value bool) *Form {
	v := "0"
	if value {
		v = "1"
	}
	return fm.AddField(Field{Var: name, Type: Boolean, Label: label, Values: []string{v}})
}

// AddList appends a list-single field with its options. A value that is
// not among the options is added as an option of its own, labelled with
// itself, so that the form offers what is set.
func (fm *Form) AddList(name, label, value string, options ...Option) *Form {
	opts := append([]Option(nil), options...)
	found := false
	for _, o := range opts {
		found = found || o.Value == value
	}
	if !found {
		opts = append(opts, Option{Label: value, Value: value})
	}
	return fm.AddField(Field{Var: name, Type: ListSingle, Label: label, Values: []string{value}, Options: opts})
}

// Field returns the field named name, or nil.
func (fm *Form) Field(name string) *Field {
	for i := range fm.Fields {
		if fm.Fields[i].Var == name {
			return &fm.Fields[i]
		}
	}
	return nil
}

// Value returns the first value of the field named name, or "".
func (fm *Form) Value(name string) string {
	if f := fm.Field(name); f != nil {
		return f.Value()
	}
	return ""
}

// Element builds the <x xmlns='jabber:x:data'/> element: title,
// instructions, the hidden FORM_TYPE field, then the fields in order.
func (fm *Form) Element() *xmpp.Element {
	x := xmpp.NewElement(NS, "x")
	x.Set("type", string(fm.Type))
	if fm.Title != "" {
		x.Add(xmpp.NewElement(NS, "title").Add(xmpp.Text(fm.Title)))
	}
	if fm.Instructions != "" {
		x.Add(xmpp.NewElement(NS, "instructions").Add(xmpp.Text(fm.Instructions)))
	}
	if fm.FormType != "" {
		x.Add(Field{Var: FormTypeVar, Type: Hidden, Values: []string{fm.FormType}}.element())
	}
	for _, f := range fm.Fields {
		x.Add(f.element())
	}
	return x
}

func (f Field) element() *xmpp.Element {
	el := xmpp.NewElement(NS, "field")
	el.Set("var", f.Var) // Set leaves out what is empty
	el.Set("type", string(f.Type))
	el.Set("label", f.Label)
	if f.Desc != "" {
		el.Add(xmpp.NewElement(NS, "desc").Add(xmpp.Text(f.Desc)))
	}
	if f.Required {
		el.Add(xmpp.NewElement(NS, "required"))
	}
	for _, v := range f.Values {
		el.Add(xmpp.NewElement(NS, "value").Add(xmpp.Text(v)))
	}
	for _, o := range f.Options {
		opt := xmpp.NewElement(NS, "option")
		opt.Set("label", o.Label)
		opt.Add(xmpp.NewElement(NS, "value").Add(xmpp.Text(o.Value)))
		el.Add(opt)
	}
	return el
}

// ErrNotForm is returned by Parse for an element that is not a data form.
var ErrNotForm = errors.New("form: not a jabber:x:data <x/> element")

// Parse reads a data form: what a client submitted, or a form received.
// The FORM_TYPE field, when there is one, becomes FormType; elements it
// does not know are skipped (XEP-0004 §3.2 leaves room for extensions).
func Parse(x *xmpp.Element) (*Form, error) {
	if x == nil || x.Space != NS || x.Local != "x" {
		return nil, ErrNotForm
	}
	fm := &Form{Type: Type(x.Get("type"))}
	for _, c := range x.Elements() {
		if c.Space != NS {
			continue
		}
		switch c.Local {
		case "title":
			fm.Title = c.Text()
		case "instructions":
			if fm.Instructions != "" {
				fm.Instructions += "\n"
			}
			fm.Instructions += c.Text()
		case "field":
			f := parseField(c)
			if f.Var == FormTypeVar && (f.Type == "" || f.Type == Hidden) && !fm.formTypeSeen {
				fm.FormType, fm.formTypeSeen, fm.formTypeHidden = f.Value(), true, f.Type == Hidden
				continue
			}
			fm.Fields = append(fm.Fields, f)
		}
	}
	return fm, nil
}

func parseField(c *xmpp.Element) Field {
	f := Field{Var: c.Get("var"), Type: FieldType(c.Get("type")), Label: c.Get("label")}
	for _, e := range c.Elements() {
		if e.Space != NS {
			continue
		}
		switch e.Local {
		case "desc":
			f.Desc = e.Text()
		case "required":
			f.Required = true
		case "value":
			f.Values = append(f.Values, e.Text())
		case "option":
			o := Option{Label: e.Get("label")}
			if v := e.Child(NS, "value"); v != nil {
				o.Value = v.Text()
			}
			f.Options = append(f.Options, o)
		}
	}
	return f
}

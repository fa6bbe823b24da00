package form

import (
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
)

// Check reports every way the form breaks the rules of XEP-0004 §3 and
// XEP-0068 §2 that clients depend on to show and fill it in, joined in one
// error; nil when there is none:
//
//   - the form's type is one of the four, and fields other than fixed ones
//     have a var, each var once;
//   - a field's type is one of XEP-0004's; fields that take one value have
//     at most one; booleans are 0, 1, false or true; JIDs parse;
//   - a list field in a form to fill in has options, each with a value,
//     and its values are among them (in any form that lists options);
//   - FORM_TYPE, when there is one, is a hidden field;
//   - in a form a service sends (form or result), every field but hidden
//     ones has a label. XEP-0004 makes labels optional; clients without
//     one show the var, or nothing at all.
func (fm *Form) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("form: "+format, args...)) }
	switch fm.Type {
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	default:
		bad("type %q is not form, submit, cancel or result", fm.Type)
	}
	sent := fm.Type == TypeForm || fm.Type == TypeResult
	if sent && fm.formTypeSeen && !fm.formTypeHidden {
		bad("%s is not a hidden field", FormTypeVar)
	}
	seen := make(map[string]bool)
	for _, f := range fm.Fields {
		name := f.Var
		if name == "" && f.Type != Fixed {
			bad("a %s field without a var", typeOf(f))
		}
		if name != "" {
			if seen[name] {
				bad("field %s appears twice", name)
			}
			seen[name] = true
		}
		if name == FormTypeVar && f.Type != Hidden {
			bad("%s is a %s field, not hidden", FormTypeVar, typeOf(f))
		}
		if sent && f.Type != Hidden && f.Label == "" {
			bad("field %s has no label", name)
		}
		switch typeOf(f) {
		case Boolean:
			for _, v := range f.Values {
				if _, err := ParseBool(v); err != nil {
					bad("field %s: %q is not a boolean", name, v)
				}
			}
		case JIDSingle, JIDMulti:
			for _, v := range f.Values {
				if _, err := jid.Parse(v); err != nil {
					bad("field %s: %q is not a JID", name, v)
				}
			}
		case ListSingle, ListMulti:
			if fm.Type == TypeForm && len(f.Options) == 0 {
				bad("list field %s has no options", name)
			}
			for _, o := range f.Options {
				if o.Value == "" {
					bad("field %s: an option without a value", name)
				}
				if sent && o.Label == "" {
					bad("field %s: option %q has no label", name, o.Value)
				}
			}
			if len(f.Options) > 0 {
				for _, v := range f.Values {
					if !slices.ContainsFunc(f.Options, func(o Option) bool { return o.Value == v }) {
						bad("field %s: value %q is not among its options", name, v)
					}
				}
			}
		case Fixed, Hidden, TextMulti, TextPrivate, TextSingle:
		default:
			bad("field %s has the unknown type %q", name, f.Type)
		}
		if single(typeOf(f)) && len(f.Values) > 1 {
			bad("field %s (%s) has %d values", name, typeOf(f), len(f.Values))
		}
	}
	return errors.Join(errs...)
}

// typeOf is a field's type, text-single when it gives none (XEP-0004 §3.3).
func typeOf(f Field) FieldType {
	if f.Type == "" {
		return TextSingle
	}
	return f.Type
}

// single reports whether a field of type t takes at most one value.
func single(t FieldType) bool {
	switch t {
	case JIDMulti, ListMulti, TextMulti, Fixed:
		return false
	}
	return true
}

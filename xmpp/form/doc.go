// Package form builds and reads data forms (XEP-0004, jabber:x:data) with
// their FORM_TYPE (XEP-0068): the forms a service sends (configuration
// forms, extended disco info of XEP-0128), the values a client submits, and
// a check of the rules that clients rely on to show a form. Every module
// that sends or reads a data form uses it, so that the rules live in one
// place.
package form

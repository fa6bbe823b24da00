// Package vcard implements vCard-temp (XEP-0054): each account's vCard,
// stored serialised, set by its owner and read by anyone, within a size
// limit.
package vcard

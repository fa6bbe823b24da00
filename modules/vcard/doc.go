// Package vcard implements vCard-temp (XEP-0054): each account's vCard,
// stored serialised, set by its owner and read by anyone, within a size
// limit; and the hash of its photo in the account's available presence
// (vCard-based avatars, XEP-0153), put there by the server as XEP-0398 §4
// describes.
package vcard

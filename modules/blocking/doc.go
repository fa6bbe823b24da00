// Package blocking implements the Blocking Command (XEP-0191,
// urn:xmpp:blocking): each account's block list, kept in storage and cached
// per online account, and applied to every stanza between the account and
// a blocked JID, in both directions, with the JID matching of XEP-0016
// §2.1.
package blocking

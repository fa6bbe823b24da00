// Package carbons keeps all of a user's clients in every conversation:
// Message Carbons (XEP-0280, urn:xmpp:carbons:2). A client that enables
// carbons gets a copy of each instant message its account sends from
// another resource (<sent/>) and of each one the account receives that
// went to another resource (<received/>), wrapped as a forwarded message
// (XEP-0297) from the account's bare JID.
//
// The module is three hooks and two IQ handlers: MessageOut copies what a
// client sends, MessageIn what the account receives, SessionEnded forgets
// the session; the copies are delivered through the Router like any other
// stanza, so a hibernated session (XEP-0198) keeps them for its client.
// On a cluster the node where a message enters works out which resources
// get it on every node (Router.Reach) and hands the message with that
// list to the other nodes of the account (a cluster operation), which
// copy it to their own carbons-enabled sessions.
package carbons

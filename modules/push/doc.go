// Package push wakes clients that are asleep: Push Notifications
// (XEP-0357, urn:xmpp:push:0). A client enables push against its app
// server's pubsub service (a JID and a node, with a publish-options form of
// credentials); when a message worth a notification arrives for the account
// while every session is hibernated (XEP-0198) or gone (the message goes to
// offline storage), the server publishes a summary to each enabled service
// from the account's bare JID: the number of messages waiting, the last
// sender and, only when the client asked for it, the last body.
//
// The module is two IQ handlers (<enable/>, <disable/>), a MessageIn hook
// for hibernated sessions, an Undeliverable hook for offline accounts, and
// session hooks that reset the count when a client comes back. The
// multi-user chat service tells it of mentions of members who are not in
// the room (Module.Mention).
package push

// Package rsm reads and writes Result Set Management <set/> elements
// (XEP-0059, http://jabber.org/protocol/rsm): the paging that disco#items
// of the chat service and message archive queries (XEP-0313) use. Every
// module that pages a result uses it, so that the rules live in one place.
package rsm

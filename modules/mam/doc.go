// Package mam keeps every account's message archive and answers queries on
// it: Message Archive Management (XEP-0313, urn:xmpp:mam:2) with the
// archive id stamped on delivered messages as a Unique and Stable Stanza ID
// (XEP-0359, urn:xmpp:sid:0). Its id generator, query parsing and result
// writing are exported for the chat service's room archive.
package mam

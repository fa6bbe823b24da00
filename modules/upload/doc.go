// Package upload is the HTTP File Upload service (XEP-0363,
// urn:xmpp:http:upload:0): a component on a domain of its own
// (upload.<domain>) that gives accounts slots, and the HTTP side on the web
// listener that takes each slot's one PUT and serves the file to anyone with
// its unguessable URL until the file expires.
package upload

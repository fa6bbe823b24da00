// Package roster implements RFC 6121 on top of the core: the roster
// (jabber:iq:roster with versioning, §2), presence subscriptions and their
// state machine (§3, Appendix A), and presence broadcast, probes and directed
// presence (§4). It adds xmppd's shared groups: everyone who shares a team or
// project (storage.Groups) has the others in their roster with a mutual
// subscription, kept current as membership changes.
package roster

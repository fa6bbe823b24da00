// Package register implements In-Band Registration (XEP-0077,
// jabber:iq:register) for the server's own accounts: a signed-in user
// changes its password (§3.3) or removes its account with everything stored
// for it (§3.2); account creation before authentication (§3.1) is off
// unless the configuration switches it on, and then limited per address and
// per time, optionally to holders of an invitation.
package register

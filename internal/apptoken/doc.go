// Package apptoken mints and verifies the sign-in tokens that the app beside
// xmppd issues to its users, so that they sign in to chat without a second
// password: JSON Web Tokens (RFC 7519) signed with HS256 (RFC 7518 §3.2) under
// a secret the app and xmppd share, naming the user's bare JID as "sub", the
// server as "aud", and an "exp". The client sends one as the password of SASL
// PLAIN (RFC 4616) over TLS; SignIn is what xmpp.Server.Tokens calls to decide.
// docs/tokens.md is the user's guide.
package apptoken

// Package admin is xmppd's admin HTTP API under /api/v1: JSON over HTTP,
// authorised by bearer tokens (`xmppctl api-token create`), for the
// application that owns the server — accounts, sessions, rooms, teams and
// projects, messages and the app's own events — and for xmppctl's live
// operations. openapi.json in this package describes it and is served at
// /api/v1/openapi.json; a test keeps the two in step.
package admin

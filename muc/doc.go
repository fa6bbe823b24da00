// Package muc is the multi-user chat service (XEP-0045): a component on a
// domain of its own (conference.<domain> by default) with rooms, occupants,
// affiliations, history and room configuration. Rooms that are configured
// persistent are kept in storage (storage.Rooms) with their configuration,
// affiliations and subject; occupants and history live in memory.
package muc

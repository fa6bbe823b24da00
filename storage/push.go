package storage

import "context"

// A PushField is one field of the publish-options data form a client gave
// when it enabled push notifications (XEP-0357 §5): its var and values, as
// sent, so that every notification carries them to the app server.
type PushField struct {
	Var    string   `json:"var"`
	Values []string `json:"values,omitempty"`
}

// A PushRegistration is one app server an account asked the server to
// notify (XEP-0357 §5): the pubsub service's JID and node, and the
// publish-options fields to send with every notification.
type PushRegistration struct {
	// JID is the app server's push service, normalised; Node its pubsub
	// node, never empty.
	JID, Node string
	// Fields are the publish-options form's fields other than FORM_TYPE, in
	// the order the client sent them; nil when it sent none.
	Fields []PushField
}

// Push stores each account's push registrations (XEP-0357), one per (JID,
// Node).
type Push interface {
	// PutPush adds r to owner's registrations, or replaces the one with the
	// same JID and Node (XEP-0357 §5: the last request's options win).
	// Adding one to an account that already has max (max > 0) fails with
	// ErrLimit; replacing one never does.
	PutPush(ctx context.Context, owner string, r PushRegistration, max int) error
	// DeletePush removes owner's registration for jid and node, or every
	// registration for jid when node is "" (XEP-0357 §6). It returns how
	// many it removed; none is not an error.
	DeletePush(ctx context.Context, owner, jid, node string) (int, error)
	// PushRegistrations returns owner's registrations sorted by JID, then
	// Node (byte order); none is not an error.
	PushRegistrations(ctx context.Context, owner string) ([]PushRegistration, error)
}

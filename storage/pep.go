package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// A PEPNode is one node of an account's personal eventing service
// (XEP-0163): its name, its configuration and its affiliations.
type PEPNode struct {
	// Name is the node's name, never empty (XEP-0060 §7.1.2: any string).
	Name string
	// Config is the node's configuration, pubsub#node_config fields by var
	// (such as "pubsub#access_model" → ["open"]): the fields the service
	// keeps, which the store keeps as given without interpreting them.
	// nil or empty when the node has the service's defaults. A field may
	// have no values. What the store returns is as Normal makes it.
	Config map[string][]string
	// Affiliations are the bare JIDs, normalised, that have an affiliation
	// with the node other than the owner's ("member", "publisher",
	// "outcast", XEP-0060 §4.1): a whitelist's members among them. nil or
	// empty when there are none.
	Affiliations map[string]string
}

// Normal returns n as backends store and return it, so that nil and empty
// read back alike: Config and Affiliations nil when they are empty, and the
// Values of a Config field without values nil. The maps and slices are new
// ones; n's are not changed.
func (n PEPNode) Normal() PEPNode {
	if len(n.Config) == 0 {
		n.Config = nil
	} else {
		c := make(map[string][]string, len(n.Config))
		for k, v := range n.Config {
			if len(v) == 0 {
				c[k] = nil
			} else {
				c[k] = slices.Clone(v)
			}
		}
		n.Config = c
	}
	if len(n.Affiliations) == 0 {
		n.Affiliations = nil
	} else {
		n.Affiliations = maps.Clone(n.Affiliations)
	}
	return n
}

// A PEPItem is one item published to a node.
type PEPItem struct {
	// ID is the item's id, unique within its node, never empty.
	ID string
	// Publisher is the full JID that published it.
	Publisher string
	// Payload is the item's content: the <item/> element's children,
	// serialised. The store keeps it as given; it may be empty (a
	// notification-only item).
	Payload []byte
	// Published is when the store stored it, set by the store (what the
	// caller gives is ignored), to the microsecond.
	Published time.Time
}

// PEP stores the personal eventing services of accounts (XEP-0163): each
// account's nodes and the items published to them.
type PEP interface {
	// CreatePEPNode adds node n to owner's service. It fails with ErrExists
	// if owner has a node of that name, and with ErrLimit if owner already
	// has maxNodes nodes (maxNodes > 0); either way nothing is stored. When
	// both hold, the error is ErrExists: the node the caller wants is there.
	CreatePEPNode(ctx context.Context, owner string, n PEPNode, maxNodes int) error
	// UpdatePEPNode replaces the Config and Affiliations of owner's node
	// n.Name, keeping its items; ErrNotFound if there is no such node.
	UpdatePEPNode(ctx context.Context, owner string, n PEPNode) error
	// PEPNodes returns owner's nodes sorted by name (byte order), each as
	// PEPNode.Normal makes it; none is not an error.
	PEPNodes(ctx context.Context, owner string) ([]PEPNode, error)
	// DeletePEPNode removes owner's node and its items; ErrNotFound if
	// there is no such node.
	DeletePEPNode(ctx context.Context, owner, node string) error

	// Items are ordered by when they were last published, in the order
	// the store took them, which equal Published times do not change.

	// PublishPEPItem stores it in owner's node, replacing the item with
	// the same ID, which then counts as the newest; then, when maxItems >
	// 0, it removes the node's oldest items beyond the newest maxItems. It
	// returns the item as stored (Published set). ErrNotFound if there is
	// no such node. Both steps happen or neither.
	PublishPEPItem(ctx context.Context, owner, node string, it PEPItem, maxItems int) (PEPItem, error)
	// PEPItems returns items of owner's node, newest first: when ids is not
	// empty, the items with those ids (ids that are not there are left
	// out, and an id given twice counts once; max is not used); otherwise
	// the newest max items, all of them when max <= 0.
	// ErrNotFound if there is no such node; a node without items is not an
	// error.
	PEPItems(ctx context.Context, owner, node string, ids []string, max int) ([]PEPItem, error)
	// LastPEPItems returns the newest item of each of owner's nodes that
	// has any, by node name: what a contact coming online is sent
	// (XEP-0163 §6.1). None is not an error.
	LastPEPItems(ctx context.Context, owner string) (map[string]PEPItem, error)
	// RetractPEPItem removes the item id from owner's node; ErrNotFound if
	// there is no such node or no such item in it.
	RetractPEPItem(ctx context.Context, owner, node, id string) error
	// PurgePEPNode removes every item of owner's node, keeping the node;
	// ErrNotFound if there is no such node.
	PurgePEPNode(ctx context.Context, owner, node string) error
}

// ColumnsJSON returns n's Config and Affiliations as the JSON objects a
// backend's columns hold: {} when there are none.
func (n PEPNode) ColumnsJSON() (config, affs string, err error) {
	n = n.Normal()
	if n.Config == nil {
		n.Config = map[string][]string{}
	}
	if n.Affiliations == nil {
		n.Affiliations = map[string]string{}
	}
	c, err := json.Marshal(n.Config)
	if err != nil {
		return "", "", err
	}
	a, err := json.Marshal(n.Affiliations)
	if err != nil {
		return "", "", err
	}
	return string(c), string(a), nil
}

// PEPNodeFromJSON reads what ColumnsJSON wrote, as Normal makes it.
func PEPNodeFromJSON(name string, config, affs []byte) (PEPNode, error) {
	n := PEPNode{Name: name}
	if err := json.Unmarshal(config, &n.Config); err != nil {
		return n, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(affs, &n.Affiliations); err != nil {
		return n, fmt.Errorf("affiliations: %w", err)
	}
	return n.Normal(), nil
}

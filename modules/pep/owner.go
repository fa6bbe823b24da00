package pep

import (
	"context"
	"errors"
	"maps"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// The owner's use cases (XEP-0060 §8): configuration, default
// configuration, deletion, purge and affiliations.

// ownerRequest is an owner's request (§8): its parties and its one
// operation; forbidden for anyone but the account.
func ownerRequest(iq *xmpp.IQ) (request, *xmpp.Element, error) {
	r := parties(iq)
	if !r.isOwner {
		return r, nil, pubsubError(xmpp.Forbidden, "", "only the account manages its nodes")
	}
	op, err := only(iq.Payload, NSOwner)
	return r, op, err
}

func (m *Module) ownerGet(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	r, op, err := ownerRequest(iq)
	if err != nil {
		return nil, err
	}
	if op.Local == "default" {
		return m.defaultConfig(NSOwner), nil
	}
	name, err := nodeName(op)
	if err != nil {
		return nil, err
	}
	svc, n, err := m.node(ctx, r.owner, name)
	if err != nil {
		return nil, err
	}
	defer svc.mu.Unlock()
	switch op.Local {
	case "configure":
		c := xmpp.NewElement(NSOwner, "configure", "node", name).Add(n.cfg.form(form.TypeForm).Element())
		return xmpp.NewElement(NSOwner, "pubsub").Add(c), nil
	case "affiliations":
		affs := xmpp.NewElement(NSOwner, "affiliations", "node", name)
		affs.Add(xmpp.NewElement(NSOwner, "affiliation", "jid", r.owner, "affiliation", "owner"))
		for _, j := range slices.Sorted(maps.Keys(n.affs)) {
			affs.Add(xmpp.NewElement(NSOwner, "affiliation", "jid", j, "affiliation", n.affs[j]))
		}
		return xmpp.NewElement(NSOwner, "pubsub").Add(affs), nil
	case "subscriptions":
		return xmpp.NewElement(NSOwner, "pubsub").Add(xmpp.NewElement(NSOwner, "subscriptions", "node", name)), nil
	}
	return nil, pubsubError(xmpp.BadRequest, "", "unknown pubsub#owner request "+op.Local)
}

// defaultConfig answers a request for the default configuration (§8.3).
func (m *Module) defaultConfig(space string) *xmpp.Element {
	d := xmpp.NewElement(space, "default").Add(defaults().form(form.TypeForm).Element())
	return xmpp.NewElement(space, "pubsub").Add(d)
}

func (m *Module) ownerSet(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	r, op, err := ownerRequest(iq)
	if err != nil {
		return nil, err
	}
	name, err := nodeName(op)
	if err != nil {
		return nil, err
	}
	switch op.Local {
	case "configure", "affiliations":
		set := m.configure
		if op.Local == "affiliations" {
			set = m.setAffiliations
		}
		if err := set(ctx, r.owner, name, op); err != nil {
			return nil, err
		}
		// Nobody is notified; other nodes forget what they kept.
		m.changed(ctx, r.owner, nil, nil)
		return nil, nil
	case "delete":
		return nil, m.Delete(ctx, r.owner, name)
	case "purge":
		return nil, m.purge(ctx, r.owner, name)
	}
	return nil, pubsubError(xmpp.BadRequest, "", "unknown pubsub#owner request "+op.Local)
}

// configure applies a submitted node_config form (§8.2.4); a cancelled
// one changes nothing.
func (m *Module) configure(ctx context.Context, owner, name string, op *xmpp.Element) error {
	fm, err := form.Parse(op.Child(form.NS, "x"))
	if err != nil {
		return pubsubError(xmpp.BadRequest, "", "configure holds a data form")
	}
	if fm.Type == form.TypeCancel {
		return nil
	}
	if fm.Type != form.TypeSubmit || (fm.FormType != "" && fm.FormType != FormNodeConfig) {
		return pubsubError(xmpp.BadRequest, "", "configure holds a submitted "+FormNodeConfig+" form")
	}
	svc, n, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	defer svc.mu.Unlock()
	cfg := n.cfg
	if err := cfg.apply(fm, m.MaxItems, true); err != nil {
		return err
	}
	if err := m.update(ctx, owner, n, cfg, n.affs); err != nil {
		return err
	}
	if !cfg.persist {
		// A node that keeps no items keeps none of those it had. (A lower
		// max_items takes effect at the next publish, which prunes.)
		if err := m.Store.PurgePEPNode(ctx, owner, name); err != nil {
			return err
		}
		n.last = nil
	}
	return nil
}

// update stores n's new configuration and affiliations, then keeps them.
func (m *Module) update(ctx context.Context, owner string, n *node, cfg nodeConfig, affs map[string]string) error {
	err := m.Store.UpdatePEPNode(ctx, owner, storage.PEPNode{Name: n.name, Config: cfg.stored(), Affiliations: affs})
	if errors.Is(err, storage.ErrNotFound) {
		return errNoNode
	}
	if err != nil {
		return err
	}
	n.cfg, n.affs = cfg, affs
	return nil
}

// Delete removes owner's node and its items (§8.4), telling those with
// interest when the node notifies deletion.
func (m *Module) Delete(ctx context.Context, owner, name string) error {
	svc, n, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	if err := m.Store.DeletePEPNode(ctx, owner, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		svc.mu.Unlock()
		return err
	}
	delete(svc.nodes, name)
	snap := *n
	svc.mu.Unlock()
	m.after(ctx, owner, &snap, xmpp.NewElement(NSEvent, "delete", "node", name), snap.cfg.delete)
	return nil
}

// purge removes every item of owner's node (§8.5).
func (m *Module) purge(ctx context.Context, owner, name string) error {
	svc, n, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	if err := m.Store.PurgePEPNode(ctx, owner, name); err != nil {
		svc.mu.Unlock()
		return err
	}
	n.last = nil
	snap := *n
	svc.mu.Unlock()
	m.after(ctx, owner, &snap, xmpp.NewElement(NSEvent, "purge", "node", name), snap.cfg.retract)
	return nil
}

// setAffiliations changes affiliations (§8.9.2): member and publisher put
// an entity on a whitelist, outcast bars it, none removes it; the owner's
// own cannot change.
func (m *Module) setAffiliations(ctx context.Context, owner, name string, op *xmpp.Element) error {
	type change struct{ jid, aff string }
	var changes []change
	for _, c := range op.Elements() {
		if c.Space != NSOwner || c.Local != "affiliation" {
			continue
		}
		j, err := jid.Parse(c.Get("jid"))
		if err != nil {
			return pubsubError(xmpp.BadRequest, "", "affiliation jid "+c.Get("jid")+" is not a JID")
		}
		bare := j.Bare().String()
		switch aff := c.Get("affiliation"); aff {
		case "member", "publisher", "outcast", "none":
			if bare == owner {
				return pubsubError(xmpp.NotAcceptable, "", "the owner stays the owner")
			}
			changes = append(changes, change{bare, aff})
		default:
			return pubsubError(xmpp.BadRequest, "", "affiliation "+aff+" cannot be given")
		}
	}
	svc, n, err := m.node(ctx, owner, name)
	if err != nil {
		return err
	}
	defer svc.mu.Unlock()
	affs := maps.Clone(n.affs)
	if affs == nil {
		affs = map[string]string{}
	}
	for _, c := range changes {
		if c.aff == "none" {
			delete(affs, c.jid)
		} else {
			affs[c.jid] = c.aff
		}
	}
	return m.update(ctx, owner, n, n.cfg, affs)
}

// ownAffiliations lists the requester's affiliations with the owner's
// nodes (§5.7): the owner's, with every node.
func (m *Module) ownAffiliations(ctx context.Context, r request) (*xmpp.Element, error) {
	svc, err := m.service(ctx, r.owner)
	if err != nil {
		return nil, err
	}
	defer svc.mu.Unlock()
	affs := xmpp.NewElement(NS, "affiliations")
	bare := r.requester.Bare().String()
	for _, name := range slices.Sorted(maps.Keys(svc.nodes)) {
		aff := svc.nodes[name].affs[bare]
		if r.isOwner {
			aff = "owner"
		}
		if aff != "" {
			affs.Add(xmpp.NewElement(NS, "affiliation", "node", name, "affiliation", aff))
		}
	}
	return xmpp.NewElement(NS, "pubsub").Add(affs), nil
}

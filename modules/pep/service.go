package pep

import (
	"context"
	"sync"

	"github.com/xmppd/xmppd/storage"
)

// A service is one account's personal eventing service as the module keeps
// it in memory: its nodes with their configuration and newest item, so
// that a contact coming online is sent the last items without a storage
// read (in a team of n, a sign-in looks at n services). The store is the
// truth; the service is loaded from it once and changed with it.
type service struct {
	mu     sync.Mutex
	loaded bool
	nodes  map[string]*node
}

// A node is one node of a service.
type node struct {
	name string
	cfg  nodeConfig
	affs map[string]string
	// last is the newest item, nil when the node has none; its Payload is
	// nil when the item is larger than cachedPayload and is read from
	// the store when needed.
	last      *storage.PEPItem
	lastLarge bool
}

// cachedPayload bounds the payload of a last item kept in memory: device
// lists, avatar metadata and nicknames are small; avatar images are not,
// and contacts ask for those by id.
const cachedPayload = 4 << 10

// setLast records it as n's newest item.
func (n *node) setLast(it storage.PEPItem) {
	if len(it.Payload) > cachedPayload {
		it.Payload = nil
		n.last, n.lastLarge = &it, true
		return
	}
	n.last, n.lastLarge = &it, false
}

// maxServices bounds how many accounts' services are kept in memory; past
// it, one is let go (and read again when needed).
const maxServices = 100_000

// services is the module's cache of accounts' services.
type services struct {
	mu sync.Mutex
	m  map[string]*service
}

// get returns owner's service, loaded (its mutex held: the caller unlocks
// it), or the store's error.
func (m *Module) service(ctx context.Context, owner string) (*service, error) {
	c := &m.cache
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*service)
	}
	svc := c.m[owner]
	if svc == nil {
		if len(c.m) >= maxServices {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		svc = &service{}
		c.m[owner] = svc
	}
	c.mu.Unlock()
	svc.mu.Lock()
	if svc.loaded {
		return svc, nil
	}
	nodes, err := m.Store.PEPNodes(ctx, owner)
	if err != nil {
		svc.mu.Unlock()
		return nil, err
	}
	last, err := m.Store.LastPEPItems(ctx, owner)
	if err != nil {
		svc.mu.Unlock()
		return nil, err
	}
	svc.nodes = make(map[string]*node, len(nodes))
	for _, sn := range nodes {
		n := &node{name: sn.Name, cfg: loadConfig(sn.Config), affs: sn.Affiliations}
		if it, ok := last[sn.Name]; ok {
			n.setLast(it)
		}
		svc.nodes[sn.Name] = n
	}
	svc.loaded = true
	return svc, nil
}

// forget drops owner's service from memory: its account is gone.
func (m *Module) forget(owner string) {
	m.cache.mu.Lock()
	delete(m.cache.m, owner)
	m.cache.mu.Unlock()
}

// lastItem returns n's newest item with its payload, reading a large one
// from the store; false when there is none.
func (m *Module) lastItem(ctx context.Context, owner string, n *node) (storage.PEPItem, bool) {
	if n.last == nil {
		return storage.PEPItem{}, false
	}
	if !n.lastLarge {
		return *n.last, true
	}
	its, err := m.Store.PEPItems(ctx, owner, n.name, []string{n.last.ID}, 0)
	if err != nil || len(its) == 0 {
		return storage.PEPItem{}, false
	}
	return its[0], true
}

// node returns owner's service and its node name with the service's mutex
// held (the caller unlocks it), or errNoNode (or the store's error) with
// it released.
func (m *Module) node(ctx context.Context, owner, name string) (*service, *node, error) {
	svc, err := m.service(ctx, owner)
	if err != nil {
		return nil, nil, err
	}
	n := svc.nodes[name]
	if n == nil {
		svc.mu.Unlock()
		return nil, nil, errNoNode
	}
	return svc, n, nil
}

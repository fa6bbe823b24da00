package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xmppd/xmppd/storage"
)

// DefaultTTL is the TTL when Options.TTL is zero.
const DefaultTTL = 30 * time.Second

// MinTTL is the shortest TTL Open accepts: a heartbeat needs a round trip
// to Redis well within TTL/3.
const MinTTL = 100 * time.Millisecond

// closeTimeout bounds the clean-up of Close.
const closeTimeout = 10 * time.Second

// closeBatch is how many hashes one Lua call of Close cleans.
const closeBatch = 256

var errClosed = errors.New("redis: registry closed")

// Options configure Open.
type Options struct {
	// Addr is the server as host:port, or a redis://, rediss:// (TLS) or
	// unix:// URL, which may carry a user name, password and database.
	Addr string
	// Prefix starts every key the registry uses, so that several
	// deployments can share one Redis. It may be empty.
	Prefix string
	// Node names this process in its entries; default: host name and PID.
	Node string
	// TTL is how long the entries of a node that stopped without Close stay
	// visible; the node's heartbeat refreshes them every TTL/3. Zero means
	// DefaultTTL; a positive value below MinTTL is an error.
	TTL time.Duration
	// Logger gets the heartbeat's warnings (it logs nothing while Redis
	// answers); nil means slog.Default().
	Logger *slog.Logger
}

// Registry is a storage.Registry in Redis. Its methods are safe for
// concurrent use; Close ends its heartbeat goroutine.
type Registry struct {
	client  *goredis.Client
	node    string
	ttl     time.Duration
	prefix  string
	nodeKey string // prefix node:<node>:<incarnation>
	idxKey  string // prefix nodeidx:<node>:<incarnation>
	idxTTL  time.Duration
	member  string // <node>:<incarnation>, in the node list
	owner   []byte // the owner part of every entry this registry writes
	log     *slog.Logger

	// gate is held shared by the methods that write, and exclusively by
	// resync, so that resync writes a consistent copy of mine.
	gate sync.RWMutex
	// mu guards mine and lost.
	mu sync.Mutex
	// mine is what this node has set (bare → resource → entry), to write
	// again when Redis lost it.
	mine map[string]map[string]string
	// lost holds removals that failed (bare → resources), to retry.
	lost map[string]map[string]bool
	// dirty says that a write failed: the next heartbeat resyncs.
	dirty atomic.Bool

	// lostFn, when set, learns that this node's liveness key had gone
	// (OnLost).
	lostFn atomic.Pointer[func()]
	// seen holds when each node key was last found alive (Resources), so
	// that a reader asks Redis about a node at most once a second: routing
	// a message to a session on another node reads the registry, and the
	// liveness check was a round trip of its own each time. An entry of a
	// node that died in that second is used a little longer; the bus then
	// finds nobody there and the router falls back (offline storage).
	seenMu sync.Mutex
	seen   map[string]time.Time

	closed    atomic.Bool
	stop      context.CancelFunc
	done      chan struct{} // closed when the heartbeat has returned
	closeOnce sync.Once
	closeErr  error
}

// Open connects to Redis, marks this node alive and starts its heartbeat.
// It fails if Redis does not answer.
func Open(ctx context.Context, o Options) (*Registry, error) {
	copts, err := clientOptions(o.Addr)
	if err != nil {
		return nil, err
	}
	ttl := o.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < MinTTL:
		return nil, fmt.Errorf("redis: registry TTL %v is below %v", ttl, MinTTL)
	}
	node := o.Node
	if node == "" {
		node = defaultNode()
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	inc := incarnation()
	r := &Registry{
		client:  goredis.NewClient(copts),
		node:    node,
		ttl:     ttl,
		prefix:  o.Prefix,
		nodeKey: o.Prefix + "node:" + node + ":" + inc,
		idxKey:  o.Prefix + "nodeidx:" + node + ":" + inc,
		idxTTL:  idxTTL(ttl),
		member:  node + ":" + inc,
		owner:   ownerPrefix(node, inc),
		log:     logger.With("node", node),
		mine:    make(map[string]map[string]string),
		lost:    make(map[string]map[string]bool),
		done:    make(chan struct{}),
	}
	_, err = r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, r.nodeKey, "1", ttl)
		p.SAdd(ctx, r.nodesKey(), r.member)
		return nil
	})
	if err != nil {
		r.client.Close()
		// copts.Addr, not o.Addr: a URL may hold a password.
		return nil, fmt.Errorf("redis: open registry on %s: %w", copts.Addr, err)
	}
	hctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go r.heartbeat(hctx)
	return r, nil
}

func clientOptions(addr string) (*goredis.Options, error) {
	var o *goredis.Options
	if strings.Contains(addr, "://") {
		var err error
		if o, err = goredis.ParseURL(addr); err != nil {
			// ParseURL's errors do not repeat the URL (and its password).
			return nil, fmt.Errorf("redis: address: %w", err)
		}
	} else {
		o = &goredis.Options{Addr: addr}
	}
	// Let the caller's deadline bound each call, the heartbeat's included.
	o.ContextTimeoutEnabled = true
	if o.Protocol == 0 {
		// RESP2 unless the URL asks otherwise: nothing here uses RESP3's
		// push notifications, and with RESP3 the client looks for them
		// around every command (a profile of the cluster bus showed it
		// costing 9% of a node's CPU, syscalls mostly).
		o.Protocol = 2
	}
	return o, nil
}

func defaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "xmppd"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func incarnation() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// Node returns the name this registry writes into its entries.
func (r *Registry) Node() string { return r.node }

func (r *Registry) presKey(bare string) string { return r.prefix + "pres:" + bare }

func (r *Registry) nodeKeyOf(node, incarnation string) string {
	return r.prefix + "node:" + node + ":" + incarnation
}

// SetResource implements storage.Registry in one round trip. The entry's
// Node is r's node, whatever res.Node says.
func (r *Registry) SetResource(ctx context.Context, bare string, res storage.Resource) error {
	if r.closed.Load() {
		return fmt.Errorf("set %s/%s: %w", bare, res.Resource, errClosed)
	}
	v := string(encodeValue(r.owner, res))
	r.gate.RLock()
	defer r.gate.RUnlock()
	_, err := r.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, r.presKey(bare), res.Resource, v)
		p.SAdd(ctx, r.idxKey, idxMember(bare, res.Resource))
		p.PExpire(ctx, r.idxKey, r.idxTTL)
		return nil
	})
	// Recorded even when the write failed: the session exists on this
	// node, and the next heartbeat that reaches Redis writes it.
	r.mu.Lock()
	byRes := r.mine[bare]
	if byRes == nil {
		byRes = make(map[string]string)
		r.mine[bare] = byRes
	}
	byRes[res.Resource] = v
	delete(r.lost[bare], res.Resource)
	r.mu.Unlock()
	if err != nil {
		r.dirty.Store(true)
		return fmt.Errorf("redis: set %s/%s: %w", bare, res.Resource, err)
	}
	return nil
}

// RemoveResource implements storage.Registry. It removes only an entry that
// r wrote: when the resource has since been bound on another node (or by a
// later run of this one), that entry stays.
func (r *Registry) RemoveResource(ctx context.Context, bare, resource string) error {
	if r.closed.Load() {
		return fmt.Errorf("remove %s/%s: %w", bare, resource, errClosed)
	}
	r.gate.RLock()
	defer r.gate.RUnlock()
	err := removeOwn.Run(ctx, r.client, []string{r.presKey(bare), r.idxKey}, resource, r.owner, idxMember(bare, resource)).Err()
	r.mu.Lock()
	delete(r.mine[bare], resource)
	if len(r.mine[bare]) == 0 {
		delete(r.mine, bare)
	}
	if err != nil {
		if r.lost[bare] == nil {
			r.lost[bare] = make(map[string]bool)
		}
		r.lost[bare][resource] = true
	}
	r.mu.Unlock()
	if err != nil {
		r.dirty.Store(true)
		return fmt.Errorf("redis: remove %s/%s: %w", bare, resource, err)
	}
	return nil
}

// Resources implements storage.Registry in two round trips (the hash, then
// its nodes' keys), and a third when it deletes entries of dead nodes.
func (r *Registry) Resources(ctx context.Context, bare string) ([]storage.Resource, error) {
	if r.closed.Load() {
		return nil, fmt.Errorf("resources of %s: %w", bare, errClosed)
	}
	key := r.presKey(bare)
	all, err := r.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: resources of %s: %w", bare, err)
	}
	if len(all) == 0 {
		return nil, nil
	}
	type entry struct {
		res        storage.Resource
		value      string
		nodeKeyIdx int
	}
	entries := make([]entry, 0, len(all))
	var nodeKeys []string
	keyIdx := make(map[string]int)
	for field, value := range all {
		res, inc, err := decodeValue([]byte(value))
		if err != nil {
			return nil, fmt.Errorf("redis: resources of %s: %s field %q: %w", bare, key, field, err)
		}
		res.Resource = field
		nk := r.nodeKeyOf(res.Node, inc)
		i, ok := keyIdx[nk]
		if !ok {
			i = len(nodeKeys)
			keyIdx[nk] = i
			nodeKeys = append(nodeKeys, nk)
		}
		entries = append(entries, entry{res: res, value: value, nodeKeyIdx: i})
	}
	alive, err := r.nodesAlive(ctx, nodeKeys)
	if err != nil {
		return nil, fmt.Errorf("redis: resources of %s: node keys: %w", bare, err)
	}
	list := make([]storage.Resource, 0, len(entries))
	deadKeys := []string{key}
	var deadArgs []any
	for _, e := range entries {
		if alive[e.nodeKeyIdx] {
			list = append(list, e.res)
			continue
		}
		deadKeys = append(deadKeys, nodeKeys[e.nodeKeyIdx])
		deadArgs = append(deadArgs, e.res.Resource, e.value)
	}
	if len(deadArgs) > 0 {
		// Best effort: a failure leaves the entries for the next reader,
		// and they are ignored meanwhile.
		_ = deleteDead.Run(ctx, r.client, deadKeys, deadArgs...).Err()
	}
	slices.SortFunc(list, func(a, b storage.Resource) int { return strings.Compare(a.Resource, b.Resource) })
	return list, nil
}

// seenFor is how long a node key found alive is taken for alive without
// asking Redis again.
const seenFor = time.Second

// nodesAlive reports which of the node keys exist: this node's own, and
// those found alive less than seenFor ago, without asking Redis; the rest
// in one MGET.
func (r *Registry) nodesAlive(ctx context.Context, keys []string) ([]bool, error) {
	alive := make([]bool, len(keys))
	now := time.Now()
	var ask []string
	var at []int
	r.seenMu.Lock()
	for i, k := range keys {
		if k == r.nodeKey || now.Sub(r.seen[k]) < seenFor {
			alive[i] = true
			continue
		}
		ask = append(ask, k)
		at = append(at, i)
	}
	r.seenMu.Unlock()
	if len(ask) == 0 {
		return alive, nil
	}
	vals, err := r.client.MGet(ctx, ask...).Result()
	if err != nil {
		return nil, err
	}
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	if r.seen == nil || len(r.seen) > 10_000 {
		r.seen = make(map[string]time.Time) // nodes come and go; forget the old ones
	}
	for j, v := range vals {
		if v != nil {
			alive[at[j]] = true
			r.seen[ask[j]] = now
		} else {
			delete(r.seen, ask[j])
		}
	}
	return alive, nil
}

// Close stops the heartbeat and removes this node's entries. Closing again
// returns the first result.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.stop()
		<-r.done
		// Writes that began before closed was set end first, so that the
		// index read below holds their sessions.
		r.gate.Lock()
		defer r.gate.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		// Without its node key every entry of this node is dead to readers
		// at once, even if the clean-up below fails half-way. The index
		// goes in the same transaction, so that a watcher never takes a
		// node that closed for one that crashed (WatchNodes).
		var members *goredis.StringSliceCmd
		_, err := r.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			members = p.SMembers(ctx, r.idxKey)
			p.Del(ctx, r.nodeKey, r.idxKey)
			p.SRem(ctx, r.nodesKey(), r.member)
			return nil
		})
		if err == nil {
			err = r.removeAll(ctx, members.Val())
		}
		if err != nil {
			err = fmt.Errorf("redis: close registry: %w", err)
		}
		r.closeErr = errors.Join(err, r.client.Close())
	})
	return r.closeErr
}

// removeAll deletes this node's entries from the hashes of the sessions in
// members (its index) and in mine.
func (r *Registry) removeAll(ctx context.Context, members []string) error {
	bares := make([]string, 0, len(members)+len(r.mine))
	for _, m := range members {
		bare, _ := splitIdxMember(m)
		bares = append(bares, bare)
	}
	r.mu.Lock()
	for bare := range r.mine { // in case the index was lost
		bares = append(bares, bare)
	}
	r.mu.Unlock()
	slices.Sort(bares)
	bares = slices.Compact(bares)
	for batch := range slices.Chunk(bares, closeBatch) {
		keys := make([]string, len(batch))
		for i, bare := range batch {
			keys[i] = r.presKey(bare)
		}
		if err := removeAllOwn.Run(ctx, r.client, keys, r.owner).Err(); err != nil {
			return err
		}
	}
	return nil
}

// idxTTL is the TTL of a node's index for a node TTL of ttl: longer, so
// that after a crash the index outlives the node key long enough for the
// survivors' watchers (polling every TTL/3) to read which sessions died.
func idxTTL(ttl time.Duration) time.Duration { return 2 * ttl }

// idxMember is a session's member in its node's index: its full JID (a
// bare JID holds no '/', RFC 7622 §3.1).
func idxMember(bare, resource string) string { return bare + "/" + resource }

func splitIdxMember(m string) (bare, resource string) {
	bare, resource, _ = strings.Cut(m, "/")
	return bare, resource
}

// heartbeat keeps this node's keys alive until ctx ends. It logs only when
// Redis stops answering, when it answers again, and when it had lost the
// node's entries.
func (r *Registry) heartbeat(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := r.beat(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			r.log.Warn("presence registry: heartbeat failed; this node's sessions vanish from the registry if it lasts", "ttl", r.ttl, "err", err)
		case err != nil:
			r.log.Debug("presence registry: heartbeat failed", "err", err)
		case failing:
			failing = false
			r.log.Info("presence registry: heartbeat recovered")
		}
	}
}

// beat refreshes the node's keys in one round trip; when the node key was
// gone or a write had failed, it writes the node's entries again.
func (r *Registry) beat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.ttl/3)
	defer cancel()
	var alive *goredis.BoolCmd
	_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		alive = p.PExpire(ctx, r.nodeKey, r.ttl)
		p.PExpire(ctx, r.idxKey, r.idxTTL)
		// Again each time: Redis may have lost it, or a watcher pruned it
		// while this node's heartbeat stalled.
		p.SAdd(ctx, r.nodesKey(), r.member)
		return nil
	})
	if err != nil {
		return err
	}
	if alive.Val() && !r.dirty.Load() {
		return nil
	}
	if !alive.Val() {
		// The heartbeat stalled for a whole TTL, or Redis lost its data
		// (a restart without persistence). Other nodes may have dropped
		// this node's entries already.
		r.log.Warn("presence registry: this node's liveness key was gone; writing its sessions again")
	}
	if err := r.resync(ctx); err != nil {
		return err
	}
	if fn := r.lostFn.Load(); !alive.Val() && fn != nil {
		(*fn)()
	}
	return nil
}

// OnLost makes fn run after this node's entries were written again because
// its liveness key had gone: the other nodes may have taken its sessions
// for dead (WatchNodes) and told their contacts so, and fn can tell them
// otherwise (the node's sessions send their presence again). fn runs on
// the heartbeat's goroutine and should not block long.
func (r *Registry) OnLost(fn func()) { r.lostFn.Store(&fn) }

// resync writes again every entry this node holds (unless another node
// has taken its resource since), retries failed removals and sets the node
// key, in one round trip, while no other write runs.
func (r *Registry) resync(ctx context.Context) error {
	r.gate.Lock()
	defer r.gate.Unlock()
	r.dirty.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for bare, resources := range r.lost {
			for res := range resources {
				// Eval, not EvalSha: a Redis that lost its data lost its
				// scripts too, and a pipeline cannot fall back.
				removeOwn.Eval(ctx, p, []string{r.presKey(bare), r.idxKey}, res, r.owner, idxMember(bare, res))
			}
		}
		for bare, byRes := range r.mine {
			args := make([]any, 0, 1+2*len(byRes))
			args = append(args, r.owner)
			members := make([]any, 0, len(byRes))
			for res, v := range byRes {
				args = append(args, res, v)
				members = append(members, idxMember(bare, res))
			}
			restoreOwn.Eval(ctx, p, []string{r.presKey(bare)}, args...)
			p.SAdd(ctx, r.idxKey, members...)
		}
		p.PExpire(ctx, r.idxKey, r.idxTTL)
		p.Set(ctx, r.nodeKey, "1", r.ttl)
		return nil
	})
	if err != nil {
		r.dirty.Store(true)
		return err
	}
	clear(r.lost)
	return nil
}

// removeOwn deletes a field if its value starts with the owner part, and
// the session from the node's index either way (if the entry is another
// node's, the session is not this node's any more).
// KEYS[1]: hash; KEYS[2]: index; ARGV[1]: field; ARGV[2]: owner part;
// ARGV[3]: index member.
var removeOwn = goredis.NewScript(`
redis.call('SREM', KEYS[2], ARGV[3])
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then
	return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
`)

// restoreOwn sets each field that is missing or holds an entry of the
// owner: another node's entry is newer than any this node lost.
// KEYS[1]: hash; ARGV[1]: owner part; ARGV[2...]: field, value, field...
var restoreOwn = goredis.NewScript(`
local n = 0
for i = 2, #ARGV, 2 do
	local v = redis.call('HGET', KEYS[1], ARGV[i])
	if not v or string.sub(v, 1, #ARGV[1]) == ARGV[1] then
		n = n + redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
	end
end
return n
`)

// removeAllOwn deletes from each hash the fields whose value starts with
// the owner part. KEYS: hashes; ARGV[1]: owner part.
var removeAllOwn = goredis.NewScript(`
local n = 0
for _, key in ipairs(KEYS) do
	local all = redis.call('HGETALL', key)
	for i = 1, #all, 2 do
		if string.sub(all[i+1], 1, #ARGV[1]) == ARGV[1] then
			n = n + redis.call('HDEL', key, all[i])
		end
	end
end
return n
`)

// deleteDead deletes entries of dead nodes, each only if it still holds the
// value the reader saw and its node key is still missing: the node may have
// come back (see resync) or the resource been bound again meanwhile.
// KEYS[1]: hash; KEYS[j+1]: node key of the j-th pair in ARGV (field,
// value, field, value...).
var deleteDead = goredis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
	local nodeKey = KEYS[(i + 1) / 2 + 1]
	if redis.call('EXISTS', nodeKey) == 0 and redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i+1] then
		n = n + redis.call('HDEL', KEYS[1], ARGV[i])
	end
end
return n
`)

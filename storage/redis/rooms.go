package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// Rooms across nodes (muc.Hosting): one node at a time hosts a chat room,
// the one named in the room's lease (key "roomhost:<room>", holding the
// node list member "<node>:<incarnation>" of its host). The lease has no
// TTL of its own: it lasts as long as the incarnation's node key, which
// the heartbeat keeps alive, so that hosting a thousand rooms costs no
// writes. A node that died, or restarted (a new incarnation), holds no
// lease any more, and the first node that has a stanza for the room takes
// it. The occupants the host has admitted are kept beside it (hash
// "roomocc:<room>", full JID → the service's record), for the next host
// to take over without the occupants noticing.

func (r *Registry) leaseKey(room string) string     { return r.prefix + "roomhost:" + room }
func (r *Registry) occupantsKey(room string) string { return r.prefix + "roomocc:" + room }

// takeRoom returns the lease's holder, after making it ARGV[1] when the
// lease is free or its holder's node key is gone.
// KEYS[1]: lease; ARGV[1]: this node's member; ARGV[2]: the prefix of
// node keys (a holder's node key is ARGV[2] .. holder; a single Redis
// server, not Redis Cluster, allows the key not given in KEYS).
var takeRoom = goredis.NewScript(`
local h = redis.call('GET', KEYS[1])
if h == ARGV[1] then return h end
if h and redis.call('EXISTS', ARGV[2] .. h) == 1 then return h end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

// releaseRoom deletes the lease if ARGV[1] holds it, and then the
// occupants too when ARGV[2] is "1". KEYS[1]: lease; KEYS[2]: occupants.
var releaseRoom = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
return 1
`)

// HostRoom returns the node that hosts room, this node if no live node
// did: one round trip.
func (r *Registry) HostRoom(ctx context.Context, room string) (string, error) {
	if r.closed.Load() {
		return "", fmt.Errorf("host of %s: %w", room, errClosed)
	}
	h, err := takeRoom.Run(ctx, r.client, []string{r.leaseKey(room)}, r.member, r.prefix+"node:").Text()
	if err != nil {
		return "", fmt.Errorf("redis: host of %s: %w", room, err)
	}
	node, _ := splitNodeMember(h)
	return node, nil
}

// HostsRoom reports whether this node (this incarnation) holds room's
// lease: false after another node took it while this one was taken for
// dead.
func (r *Registry) HostsRoom(ctx context.Context, room string) (bool, error) {
	h, err := r.client.Get(ctx, r.leaseKey(room)).Result()
	if err == goredis.Nil {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis: host of %s: %w", room, err)
	}
	return h == r.member, nil
}

// ReleaseRoom gives up room's lease if this node holds it; with
// forgetOccupants (the room is gone), its occupants go too.
func (r *Registry) ReleaseRoom(ctx context.Context, room string, forgetOccupants bool) error {
	forget := "0"
	if forgetOccupants {
		forget = "1"
	}
	err := releaseRoom.Run(ctx, r.client, []string{r.leaseKey(room), r.occupantsKey(room)}, r.member, forget).Err()
	if err != nil {
		return fmt.Errorf("redis: releasing %s: %w", room, err)
	}
	return nil
}

// SaveOccupant records one session of an occupant of room, full being
// its JID and rec what the service needs to restore it.
func (r *Registry) SaveOccupant(ctx context.Context, room, full string, rec []byte) error {
	if err := r.client.HSet(ctx, r.occupantsKey(room), full, rec).Err(); err != nil {
		return fmt.Errorf("redis: occupant of %s: %w", room, err)
	}
	return nil
}

// DropOccupant removes the session full from room's occupants.
func (r *Registry) DropOccupant(ctx context.Context, room, full string) error {
	if err := r.client.HDel(ctx, r.occupantsKey(room), full).Err(); err != nil {
		return fmt.Errorf("redis: occupant of %s: %w", room, err)
	}
	return nil
}

// RoomOccupants returns room's recorded occupant sessions, full JID →
// record.
func (r *Registry) RoomOccupants(ctx context.Context, room string) (map[string][]byte, error) {
	all, err := r.client.HGetAll(ctx, r.occupantsKey(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: occupants of %s: %w", room, err)
	}
	out := make(map[string][]byte, len(all))
	for k, v := range all {
		out[k] = []byte(v)
	}
	return out, nil
}

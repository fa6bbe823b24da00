package redis

import "context"

// Ping asks Redis for PONG: whether this node can reach the registry now,
// for a readiness probe (internal/metrics). A closed registry fails.
func (r *Registry) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

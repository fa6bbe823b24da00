package offline

import "github.com/xmppd/xmppd/storage"

// SetLimits changes Max and MaxTotalBytes of a registered module, for the
// messages stored from then on (a configuration reload); zero selects
// the defaults. It is safe to call while the server runs; queues already
// larger keep their messages.
func (m *Module) SetLimits(max int, totalBytes int64) {
	if max == 0 {
		max = DefaultMax
	}
	if totalBytes == 0 {
		totalBytes = DefaultMaxTotalBytes
	}
	m.limits.Store(&storage.OfflineLimits{PerAccount: max, TotalBytes: totalBytes})
}

// Package metrics exposes xmppd to monitoring: Prometheus metrics (sessions
// by transport, stanzas, routing latency, federation streams, BOSH sessions,
// storage latency, authentication failures, queue drops, and the Go runtime
// and process), and the /healthz and /readyz probes. It implements
// xmpp.Metrics, the core's hook, so the core does not depend on Prometheus.
// docs/metrics.md lists the metric names; docs/grafana/xmppd.json graphs them.
//
// store.go is generated: go generate ./internal/metrics.
package metrics

//go:generate go run gen_store.go

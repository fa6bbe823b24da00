// Package deploy holds what runs xmppd in production besides the binary —
// xmppd.yaml (the configuration docker-compose.yml mounts) and
// xmppd.service (a systemd unit) — and the tests that keep them, the
// top-level Dockerfile and docker-compose.yml valid for this version
// (docs/deploy.md). It has no Go code of its own.
package deploy

# syntax=docker/dockerfile:1
# xmppd's container image: xmppd and xmppctl (static, no cgo: the SQLite
# driver is pure Go), the web client (Converse.js at /chat/), running as an
# unprivileged user with its data in a volume. docker-compose.yml runs it
# with Postgres and Redis; docs/deploy.md says how.
#
#	docker build --build-arg VERSION=v1.2.3 --build-arg REVISION=$(git rev-parse HEAD) \
#		--build-arg BUILD_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t xmppd .

ARG GO_VERSION=1.26
ARG NODE_VERSION=22
ARG ALPINE_VERSION=3.22

# --- the binaries -------------------------------------------------------------
FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
# Modules first, so that a change to the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
ARG BUILD_TIME=
# .git is not in the build context (.dockerignore): the revision comes from
# the build arguments instead (xmppd -version).
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildRevision=${REVISION} -X main.buildTime=${BUILD_TIME}" \
	-o /out/ ./cmd/xmppd ./cmd/xmppctl

# --- the web client -----------------------------------------------------------
FROM node:${NODE_VERSION}-alpine AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
# converse.js alone, as scripts/web-deps.sh --client-only installs it.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=warn
COPY web/chat ./chat

# --- the image ----------------------------------------------------------------
FROM alpine:${ALPINE_VERSION}
# ca-certificates: verifying other servers' certificates (s2s) and Postgres
# over TLS; tzdata: log times in TZ when set. wget (busybox) is the health
# check's. /var/lib/xmppd/upload exists in the image so that a volume mounted
# there (the one the nodes of docker-compose.cluster.yml share) is xmppd's.
RUN apk add --no-cache ca-certificates tzdata \
	&& addgroup -S -g 10001 xmppd \
	&& adduser -S -D -H -u 10001 -G xmppd -h /var/lib/xmppd -s /sbin/nologin xmppd \
	&& install -d -o xmppd -g xmppd -m 0700 /var/lib/xmppd /var/lib/xmppd/upload \
	&& install -d -m 0755 /etc/xmppd
COPY --from=build /out/xmppd /out/xmppctl /usr/local/bin/
COPY --from=web /web/chat /usr/share/xmppd/web/chat
COPY --from=web /web/node_modules /usr/share/xmppd/web/node_modules

USER xmppd:xmppd
# The web client's default folder, http.web_client_dir "web", is here.
WORKDIR /usr/share/xmppd
VOLUME ["/var/lib/xmppd"]
# c2s STARTTLS, c2s direct TLS, s2s, HTTP (WebSocket, BOSH, /chat/), HTTPS.
EXPOSE 5222 5223 5269 5280 5443
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
	CMD wget -q -O /dev/null http://127.0.0.1:5280/.well-known/host-meta || exit 1
# xmppd stops within 20 s of SIGTERM (docs/configuration.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["xmppd"]
# Alone (docker run), a single node on SQLite in the volume, listening on
# every address of the container; docker-compose.yml gives it a
# configuration file instead (-config /etc/xmppd/xmppd.yaml).
CMD ["-data", "/var/lib/xmppd", "-c2s", "0.0.0.0:5222", "-c2s-tls", "0.0.0.0:5223", \
	"-s2s", "0.0.0.0:5269", "-http", "0.0.0.0:5280"]

package deploy

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/config"
)

// The cluster Compose file, its nodes and their configurations
// (docs/cluster.md).
const (
	clusterFile   = "docker-compose.cluster.yml"
	haproxyConfig = "/usr/local/etc/haproxy/haproxy.cfg"
	uploadDir     = "/var/lib/xmppd/upload"
)

var clusterNodes = []string{"xmppd-1", "xmppd-2", "xmppd-3"}

// TestClusterCompose checks docker-compose.cluster.yml's structure: three
// nodes of one image, each with its own configuration and data volume, all
// sharing the upload volume and the dialback key, reachable only through
// haproxy; Postgres and Redis as in docker-compose.yml.
func TestClusterCompose(t *testing.T) {
	c := loadComposeFile(t, clusterFile)
	single := loadCompose(t)
	for _, name := range append(slices.Clone(clusterNodes), "haproxy", "postgres", "redis") {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("%s: healthcheck test %q, want a CMD", name, s.Healthcheck.Test)
		}
	}
	if n := len(c.Services); n != len(clusterNodes)+3 {
		t.Errorf("%d services, want the %d nodes, haproxy, postgres and redis", n, len(clusterNodes))
	}

	image := single.Services["xmppd"].Image
	builds, dataVolumes := 0, map[string]bool{}
	upload := ""
	for _, name := range clusterNodes {
		s := c.Services[name]
		if s.Image != image {
			t.Errorf("%s: image %q, want %q as docker-compose.yml's", name, s.Image, image)
		}
		if s.Build != nil {
			builds++
		}
		if !slices.Equal(s.Command, []string{"-config", configPath}) {
			t.Errorf("%s: command %q, want -config %s", name, s.Command, configPath)
		}
		if src, opts, ok := s.mount(configPath); !ok || src != "./deploy/cluster/"+name+".yaml" || opts != "ro" {
			t.Errorf("%s: %s mounted from %q (%q), want ./deploy/cluster/%s.yaml read-only", name, configPath, src, opts, name)
		}
		data, _, ok := s.mount("/var/lib/xmppd")
		if _, declared := c.Volumes[data]; !ok || !declared || dataVolumes[data] {
			t.Errorf("%s: data volume %q, want a named volume of its own", name, data)
		}
		dataVolumes[data] = true
		// Any node serves a file that was uploaded to another one.
		up, _, ok := s.mount(uploadDir)
		if _, declared := c.Volumes[up]; !ok || !declared || (upload != "" && up != upload) {
			t.Errorf("%s: %s mounted from %q, want the named volume all nodes share", name, uploadDir, up)
		}
		upload = up
		if !slices.Equal(s.Secrets, []string{"dialback_secret"}) {
			t.Errorf("%s: secrets %q, want dialback_secret", name, s.Secrets)
		}
		if len(s.Ports) != 0 {
			t.Errorf("%s publishes %q: clients must come through haproxy", name, s.Ports)
		}
		for _, dep := range []string{"postgres", "redis"} {
			if got := s.DependsOn[dep].Condition; got != "service_healthy" {
				t.Errorf("%s depends on %s with condition %q, want service_healthy", name, dep, got)
			}
		}
		if s.Environment["PGPASSWORD"] != single.Services["xmppd"].Environment["PGPASSWORD"] {
			t.Errorf("%s: PGPASSWORD %q, want it from .env as in docker-compose.yml", name, s.Environment["PGPASSWORD"])
		}
	}
	if builds != 1 {
		t.Errorf("%d nodes build the image, want one (the others run it)", builds)
	}
	if f := c.Secrets["dialback_secret"].File; f != "./deploy/cluster/dialback_secret" {
		t.Errorf("secret dialback_secret from %q, want ./deploy/cluster/dialback_secret (git ignores it)", f)
	}

	h := c.Services["haproxy"]
	if !strings.HasPrefix(h.Image, "haproxy:") {
		t.Errorf("haproxy image %q, want the official one", h.Image)
	}
	if src, opts, ok := h.mount(haproxyConfig); !ok || src != "./deploy/cluster/haproxy.cfg" || opts != "ro" {
		t.Errorf("haproxy: %s mounted from %q (%q), want ./deploy/cluster/haproxy.cfg read-only", haproxyConfig, src, opts)
	}
	for _, p := range []string{"5222", "5223", "5269", "5280"} {
		if !slices.Contains(h.containerPorts(), p) {
			t.Errorf("haproxy: port %s not published", p)
		}
	}
	// Plain HTTP only where a TLS proxy on the host reaches it, as in
	// docker-compose.yml.
	if !slices.Contains(h.Ports, "127.0.0.1:5280:5280") {
		t.Errorf("haproxy: 5280 published as %q, want on the host's loopback only", h.Ports)
	}

	for _, name := range []string{"postgres", "redis"} {
		got, want := c.Services[name], single.Services[name]
		if got.Image != want.Image || !reflect.DeepEqual(got.Environment, want.Environment) || len(got.Ports) != 0 {
			t.Errorf("%s: %q %q %q, want as in docker-compose.yml (%q %q) and not published", name,
				got.Image, got.Environment, got.Ports, want.Image, want.Environment)
		}
	}
}

// TestClusterConfigs loads each node's configuration with xmppd's loader:
// they are the same but for presence.node, which is unique and names the
// node's service, and they put the nodes in one cluster.
func TestClusterConfigs(t *testing.T) {
	c := loadComposeFile(t, clusterFile)
	single, err := config.Load("xmppd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var first config.Config
	for i, name := range clusterNodes {
		cfg, err := config.Load(filepath.Join("cluster", name+".yaml"))
		if err != nil {
			t.Fatalf("deploy/cluster/%s.yaml: %v", name, err)
		}
		if cfg.Presence.Node != name {
			t.Errorf("%s: presence.node %q, want the service's name", name, cfg.Presence.Node)
		}
		if i == 0 {
			first = cfg
			if cfg.Storage.Backend != "postgres" || cfg.Storage.Postgres != single.Storage.Postgres {
				t.Errorf("storage %s %q, want postgres at %q as deploy/xmppd.yaml", cfg.Storage.Backend, cfg.Storage.Postgres, single.Storage.Postgres)
			}
			if cfg.Presence.Backend != "redis" || cfg.Presence.Redis != single.Presence.Redis {
				t.Errorf("presence %s at %q, want redis at %q", cfg.Presence.Backend, cfg.Presence.Redis, single.Presence.Redis)
			}
			if cfg.Domain != single.Domain {
				t.Errorf("domain %q, want %q as deploy/xmppd.yaml", cfg.Domain, single.Domain)
			}
			if want := "/run/secrets/dialback_secret"; cfg.S2S.DialbackSecretFile != want || cfg.S2S.DialbackSecret != "" {
				t.Errorf("s2s.dialback_secret_file %q, want %s (the compose secret)", cfg.S2S.DialbackSecretFile, want)
			}
			if cfg.UploadDir() != uploadDir {
				t.Errorf("upload folder %s, want %s (the shared volume)", cfg.UploadDir(), uploadDir)
			}
			if _, _, ok := c.Services[name].mount(cfg.DataDir); !ok {
				t.Errorf("data_dir %s is not the node's volume", cfg.DataDir)
			}
			continue
		}
		cfg.Presence.Node = first.Presence.Node
		if !reflect.DeepEqual(cfg, first) {
			t.Errorf("deploy/cluster/%s.yaml differs from %s.yaml in more than presence.node", name, clusterNodes[0])
		}
	}
}

// haproxySection is a section of haproxy.cfg: its kind and name, and its
// lines.
type haproxySection struct {
	kind, name string
	lines      [][]string
}

func (s haproxySection) has(words ...string) bool {
	for _, l := range s.lines {
		if slices.Equal(l, words) {
			return true
		}
	}
	return false
}

func (s haproxySection) all(keyword string) [][]string {
	var out [][]string
	for _, l := range s.lines {
		if l[0] == keyword {
			out = append(out, l[1:])
		}
	}
	return out
}

func loadHAProxy(t *testing.T) map[string]haproxySection {
	t.Helper()
	f, err := os.Open(filepath.Join("cluster", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]haproxySection{}
	var cur *haproxySection
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			if cur != nil {
				out[cur.kind+" "+cur.name] = *cur
			}
			cur = &haproxySection{kind: words[0]}
			if len(words) > 1 {
				cur.name = words[1]
			}
			continue
		}
		if cur == nil {
			t.Fatalf("haproxy.cfg: %q outside a section", line)
		}
		cur.lines = append(cur.lines, words)
	}
	if cur != nil {
		out[cur.kind+" "+cur.name] = *cur
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestClusterHAProxy checks that haproxy passes each XMPP port to every
// node as TCP, HTTP with a cookie that keeps a BOSH session on its node,
// asks the nodes' /readyz, and (where haproxy is installed) that haproxy
// takes the file.
func TestClusterHAProxy(t *testing.T) {
	secs := loadHAProxy(t)
	cfg, err := config.Load(filepath.Join("cluster", clusterNodes[0]+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, admin, _ := net.SplitHostPort(cfg.Listen.Admin)
	def := secs["defaults "]
	check := false
	for _, l := range def.all("default-server") {
		i := slices.Index(l, "port")
		check = check || (slices.Contains(l, "check") && i >= 0 && i+1 < len(l) && l[i+1] == admin)
	}
	if !check {
		t.Errorf("defaults: no default-server check on port %s (listen.admin, where /readyz is)", admin)
	}
	published := loadComposeFile(t, clusterFile).Services["haproxy"].containerPorts()
	for port, mode := range map[string]string{"5222": "tcp", "5223": "tcp", "5269": "tcp", "5280": "http"} {
		// The frontend that binds the port, and its backend.
		var fe haproxySection
		for _, s := range secs {
			if s.kind == "frontend" && s.has("bind", ":"+port) {
				fe = s
			}
		}
		if fe.name == "" || !fe.has("mode", mode) {
			t.Errorf("port %s: frontend %q, want one binding :%s in %s mode", port, fe.name, port, mode)
			continue
		}
		if !slices.Contains(published, port) {
			t.Errorf("port %s: haproxy binds it, Compose does not publish it", port)
		}
		if mode == "tcp" && !fe.has("tcp-request", "connection", "track-sc0", "src", "table", "per_address") {
			t.Errorf("frontend %s: no per-address tracking (xmppd sees only haproxy's address)", fe.name)
		}
		be := fe.all("default_backend")
		if len(be) != 1 {
			t.Errorf("frontend %s: no default_backend", fe.name)
			continue
		}
		b, ok := secs["backend "+be[0][0]]
		if !ok || !b.has("mode", mode) || !b.has("option", "httpchk", "GET", "/readyz") {
			t.Errorf("backend %s: want %s mode and option httpchk GET /readyz", be[0][0], mode)
			continue
		}
		var servers []string
		for _, s := range b.all("server") {
			if len(s) < 2 {
				t.Fatalf("backend %s: server %q", b.name, s)
			}
			servers = append(servers, s[1])
			if mode == "http" && !slices.Contains(s, "cookie") {
				t.Errorf("backend %s: server %s has no cookie: a BOSH session's requests could reach another node", b.name, s[0])
			}
		}
		var want []string
		for _, n := range clusterNodes {
			want = append(want, n+":"+port)
		}
		if !slices.Equal(servers, want) {
			t.Errorf("backend %s: servers %q, want %q", b.name, servers, want)
		}
		if mode == "http" && len(b.all("cookie")) != 1 {
			t.Errorf("backend %s: no cookie for BOSH stickiness", b.name)
		}
	}

	bin, err := exec.LookPath("haproxy")
	if err != nil {
		missing(t, "haproxy is not installed (scripts/test-deps.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", "-f", filepath.Join("cluster", "haproxy.cfg")).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	// The node names resolve only on the Compose network: that warning
	// is expected, any other is not.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "[WARNING]") && !strings.Contains(l, "could not resolve address") {
			t.Errorf("haproxy -c: %s", l)
		}
	}
}

package deploy

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/xmppd/xmppd/internal/config"
)

// root is the repository's top folder; tests run in deploy/.
const root = ".."

// compose is the part of a Compose file the tests look at.
type compose struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type service struct {
	Image     string   `yaml:"image"`
	Build     any      `yaml:"build"`
	Command   []string `yaml:"command"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) compose { return loadComposeFile(t, "docker-compose.yml") }

// loadComposeFile reads a Compose file at the top, anchors and merge keys
// resolved.
func loadComposeFile(t *testing.T, name string) compose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	d := yaml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// mount finds the volume of s mounted at target: its source and options.
func (s service) mount(target string) (source, opts string, ok bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0], strings.Join(parts[2:], ":"), true
		}
	}
	return "", "", false
}

// containerPorts are the container's side of the published ports.
func (s service) containerPorts() []string {
	var out []string
	for _, p := range s.Ports {
		i := strings.LastIndex(p, ":")
		out = append(out, p[i+1:])
	}
	return out
}

const configPath = "/etc/xmppd/xmppd.yaml"

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"xmppd", "postgres", "redis"} {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("%s: healthcheck test %q, want a CMD", name, s.Healthcheck.Test)
		}
	}
	x, pg, rd := c.Services["xmppd"], c.Services["postgres"], c.Services["redis"]

	if x.Build == nil {
		t.Error("xmppd is not built from the Dockerfile")
	}
	if !regexp.MustCompile(`^postgres:1[56](\.|-|$)`).MatchString(pg.Image) {
		t.Errorf("postgres image %q, want 15 or 16", pg.Image)
	}
	if !regexp.MustCompile(`^redis:7(\.|-|$)`).MatchString(rd.Image) {
		t.Errorf("redis image %q, want 7", rd.Image)
	}
	for _, dep := range []string{"postgres", "redis"} {
		if got := x.DependsOn[dep].Condition; got != "service_healthy" {
			t.Errorf("xmppd depends on %s with condition %q, want service_healthy", dep, got)
		}
	}

	// Named volumes, declared at the top.
	for name, target := range map[string]string{"xmppd": "/var/lib/xmppd", "postgres": "/var/lib/postgresql/data", "redis": "/data"} {
		src, _, ok := c.Services[name].mount(target)
		if !ok {
			t.Errorf("%s: nothing mounted at %s", name, target)
			continue
		}
		if _, declared := c.Volumes[src]; !declared {
			t.Errorf("%s: %s is mounted from %q, not a named volume", name, target, src)
		}
	}

	// The configuration file is mounted read-only and used.
	src, opts, ok := x.mount(configPath)
	if !ok || src != "./deploy/xmppd.yaml" || opts != "ro" {
		t.Errorf("xmppd: %s mounted from %q (%q), want ./deploy/xmppd.yaml read-only", configPath, src, opts)
	}
	if !slices.Equal(x.Command, []string{"-config", configPath}) {
		t.Errorf("xmppd command %q, want -config %s", x.Command, configPath)
	}
	for _, p := range []string{"5222", "5223", "5269", "5280", "5443"} {
		if !slices.Contains(x.containerPorts(), p) {
			t.Errorf("xmppd: port %s not published", p)
		}
	}

	// The database password comes from .env, never from the file.
	secret := regexp.MustCompile(`^\$\{POSTGRES_PASSWORD:\?[^}]+\}$`)
	for _, v := range []string{x.Environment["PGPASSWORD"], pg.Environment["POSTGRES_PASSWORD"]} {
		if !secret.MatchString(v) {
			t.Errorf("password %q, want ${POSTGRES_PASSWORD:?...} (required, from .env)", v)
		}
	}
	if pg.Environment["POSTGRES_USER"] == "" || pg.Environment["POSTGRES_DB"] == "" {
		t.Error("postgres: POSTGRES_USER or POSTGRES_DB not set")
	}
	if len(pg.Ports) != 0 || len(rd.Ports) != 0 {
		t.Error("postgres or redis published on the host")
	}
}

// TestComposeConfig loads the mounted configuration with xmppd's own loader
// and checks that it points at the compose services and the image's paths.
func TestComposeConfig(t *testing.T) {
	cfg, err := config.Load("xmppd.yaml")
	if err != nil {
		t.Fatalf("deploy/xmppd.yaml: %v", err)
	}
	c := loadCompose(t)
	pg := c.Services["postgres"]

	if cfg.Storage.Backend != "postgres" {
		t.Errorf("storage.backend %q, want postgres", cfg.Storage.Backend)
	}
	dsn := cfg.Storage.Postgres
	want := "postgres://" + pg.Environment["POSTGRES_USER"] + "@postgres:5432/" + pg.Environment["POSTGRES_DB"] + "?"
	if !strings.HasPrefix(dsn, want) {
		t.Errorf("storage.postgres_dsn %q, want it to start %q (user and database of the service, no password)", dsn, want)
	}
	if cfg.Presence.Backend != "redis" || cfg.Presence.Redis != "redis:6379" {
		t.Errorf("presence %q at %q, want redis at redis:6379", cfg.Presence.Backend, cfg.Presence.Redis)
	}
	if _, _, ok := c.Services["xmppd"].mount(cfg.DataDir); !ok {
		t.Errorf("data_dir %s is not the xmppd volume", cfg.DataDir)
	}
	published := c.Services["xmppd"].containerPorts()
	for key, addr := range map[string]string{
		"c2s": cfg.Listen.C2S, "c2s_direct_tls": cfg.Listen.C2SDirect, "s2s": cfg.Listen.S2S,
		"http": cfg.Listen.HTTP, "https": cfg.Listen.HTTPS,
	} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "0.0.0.0" || !slices.Contains(published, port) {
			t.Errorf("listen.%s %q: want 0.0.0.0 and a published port", key, addr)
		}
	}
	df := parseDockerfile(t)
	final := df.stages[len(df.stages)-1]
	if !final.copiesTo(cfg.HTTP.WebClientDir + "/node_modules") {
		t.Errorf("http.web_client_dir %s: the image has no node_modules there", cfg.HTTP.WebClientDir)
	}
}

// dockerfile is a Dockerfile's instructions, by stage.
type dockerfile struct {
	stages []stage
}

type stage struct {
	from, name string
	lines      []instruction
}

type instruction struct {
	cmd, args string
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.lines {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func (s stage) copiesTo(dst string) bool {
	for _, a := range s.all("COPY") {
		f := strings.Fields(a)
		if f[len(f)-1] == dst {
			return true
		}
	}
	return false
}

// parseDockerfile reads ../Dockerfile: comments dropped, continuation
// lines joined, instructions grouped by FROM.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var df dockerfile
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			f := strings.Fields(args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			if cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before FROM", cmd)
			}
			continue
		}
		st := &df.stages[len(df.stages)-1]
		st.lines = append(st.lines, instruction{cmd, strings.TrimSpace(args)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(df.stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(df.stages))
	}
	return df
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	stages := map[string]stage{}
	for _, s := range df.stages {
		stages[s.name] = s
	}
	final := df.stages[len(df.stages)-1]

	// A static build of both binaries, stamped for xmppd -version.
	build, ok := stages["build"]
	if !ok || !strings.HasPrefix(build.from, "golang:") {
		t.Fatalf("no golang stage named build")
	}
	run := strings.Join(build.all("RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/xmppd", "./cmd/xmppctl",
		"-X main.buildVersion=", "-X main.buildRevision=", "-X main.buildTime="} {
		if !strings.Contains(run, want) {
			t.Errorf("build stage: no %q in its RUN", want)
		}
	}
	// The web client alone (no test tools), as web-deps.sh --client-only.
	web, ok := stages["web"]
	if !ok || !strings.HasPrefix(web.from, "node:") {
		t.Fatal("no node stage named web")
	}
	if run := strings.Join(web.all("RUN"), "\n"); !strings.Contains(run, "npm ci") || !strings.Contains(run, "--omit=dev") {
		t.Errorf("web stage: want npm ci --omit=dev, have %q", run)
	}
	for _, src := range []string{"/out/xmppd", "/web/chat", "/web/node_modules"} {
		found := false
		for _, a := range final.all("COPY") {
			found = found || (strings.HasPrefix(a, "--from=") && strings.Contains(a, src))
		}
		if !found {
			t.Errorf("final stage: %s is not copied in", src)
		}
	}

	// Not root: by name or by number.
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("final stage: no USER, so it runs as root")
	}
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	if user == "root" || user == "0" {
		t.Errorf("final stage runs as %q", user)
	}
	if len(final.all("HEALTHCHECK")) == 0 || len(final.all("VOLUME")) == 0 {
		t.Error("final stage: no HEALTHCHECK or no VOLUME")
	}
	exposed := strings.Fields(strings.Join(final.all("EXPOSE"), " "))
	for _, p := range []string{"5222", "5223", "5269", "5280", "5443"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("final stage: port %s not exposed", p)
		}
	}
}

// TestSecretsStayOut: .env holds the real password; git and the image
// context leave it out, and the sample names every variable compose needs.
func TestSecretsStayOut(t *testing.T) {
	for file, want := range map[string][]string{
		".gitignore":    {".env", "/deploy/cluster/dialback_secret"},
		".dockerignore": {".env", "deploy/cluster/dialback_secret"},
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !slices.Contains(strings.Split(string(b), "\n"), w) {
				t.Errorf("%s does not list %s", file, w)
			}
		}
	}
	sample, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"docker-compose.yml", "docker-compose.cluster.yml"} {
		dc, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)`).FindAllSubmatch(dc, -1) {
			if !regexp.MustCompile(`(?m)^` + string(m[1]) + `=`).Match(sample) {
				t.Errorf(".env.example does not set %s, which %s uses", m[1], file)
			}
		}
	}
}

// TestComposeCLI runs `docker-compose config -q` on both Compose files
// where the CLI is installed (Debian's docker-compose); it needs no Docker
// engine.
func TestComposeCLI(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		missing(t, "docker-compose is not installed (scripts/test-deps.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	top, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	// Not the developer's .env: only what is given here.
	noEnv := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(noEnv, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"docker-compose.yml", "docker-compose.cluster.yml"} {
		run := func(env ...string) ([]byte, error) {
			cmd := exec.CommandContext(ctx, bin, "--project-directory", top, "--env-file", noEnv,
				"-f", filepath.Join(top, file), "config", "-q")
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
			cmd.Dir = t.TempDir()
			return cmd.CombinedOutput()
		}
		if out, err := run("POSTGRES_PASSWORD=for-the-test"); err != nil {
			t.Errorf("docker-compose -f %s config: %v\n%s", file, err, out)
		}
		out, err := run()
		if err == nil || !strings.Contains(string(out), "POSTGRES_PASSWORD") {
			t.Errorf("docker-compose -f %s config without POSTGRES_PASSWORD: %v, %s; want a refusal naming it", file, err, out)
		}
	}
}

// TestSystemdUnit checks the unit's hardening and, where systemd-analyze
// is installed, its syntax.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("xmppd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/xmppd -config " + configPath + "\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n",
		"Restart=on-failure\n",
		"User=xmppd\n",
		"NoNewPrivileges=yes\n",
		"ProtectSystem=strict\n",
		"ProtectHome=yes\n",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"StateDirectory=xmppd\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("xmppd.service lacks %q", strings.TrimSpace(want))
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		missing(t, "systemd-analyze is not installed (scripts/test-deps.sh installs systemd)")
	}
	// The binary's path must exist for verify: any executable does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "xmppd.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/xmppd", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDeployDocConfig: the YAML examples of docs/deploy.md and
// docs/cluster.md load.
func TestDeployDocConfig(t *testing.T) {
	for _, name := range []string{"deploy.md", "cluster.md"} {
		doc, err := os.ReadFile(filepath.Join(root, "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
		if len(blocks) == 0 {
			t.Fatalf("no yaml examples in docs/%s", name)
		}
		for i, b := range blocks {
			path := filepath.Join(t.TempDir(), "example.yaml")
			if err := os.WriteFile(path, b[1], 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(path); err != nil {
				t.Errorf("docs/%s example %d does not load: %v\n%s", name, i+1, err, b[1])
			}
		}
	}
}

// missing skips a test whose tool is absent, or fails it under CI=true,
// where scripts/test-deps.sh has installed everything.
func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL server of a test's own, on a free loopback port,
// that the test may stop and start again (the shared server of
// XMPPD_TEST_POSTGRES is never restarted). Its data survives Stop and Start,
// as a real server's does across a restart.
type Postgres struct {
	t    testing.TB
	bin  string // the directory of postgres, initdb and pg_ctl
	dir  string // the cluster's directory: data/, the log and the socket
	port int
}

// StartPostgres initialises a cluster in a temporary directory and starts
// it; t's cleanup stops it and removes the directory. Without the server's
// binaries (under /usr/lib/postgresql) the test is skipped, or fails under
// CI=true. Postgres refuses to run as root: as root the cluster belongs to,
// and runs as, the postgres user of the Debian package.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p := &Postgres{t: t, bin: postgresBin(t)}
	// Not t.TempDir(): as root that directory is 0700 root's, which the
	// postgres user cannot enter.
	dir, err := os.MkdirTemp("", "xmppd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() {
		// Immediate: nothing in a test's cluster needs a checkpoint.
		p.pgctl(context.Background(), "stop", "-m", "immediate", "-w", "-t", "30")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missingPostgres(t, "running as root and there is no postgres user to run Postgres as (scripts/test-deps.sh): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.port = freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := p.command(ctx, filepath.Join(p.bin, "initdb"), "-D", p.data(), "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\n# testenv.StartPostgres\nlisten_addresses = '127.0.0.1'\nport = %d\n"+
		"unix_socket_directories = '%s'\nfsync = off\nfull_page_writes = off\nmax_connections = 50\n", p.port, dir)
	f, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	return p
}

// DSN is the server's address for pgx (and xmppd's storage.postgres_dsn):
// the database "postgres" as the superuser postgres, over TCP.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.port)
}

// SocketDSN reaches the server over its Unix socket only; it works while the
// server runs with TCP off (StartSocketOnly).
func (p *Postgres) SocketDSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=5", p.dir, p.port)
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	p.start()
}

// StartSocketOnly starts the server with no TCP listener: clients that use
// DSN (xmppd) still find it down, while the test changes data through
// SocketDSN, as an operator would during maintenance.
func (p *Postgres) StartSocketOnly() {
	p.t.Helper()
	p.start("-o", "-c listen_addresses=''")
}

func (p *Postgres) start(extra ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"start", "-w", "-t", "50", "-l", filepath.Join(p.dir, "postgres.log")}, extra...)
	if out, err := p.pgctl(ctx, args...); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "postgres.log"))
		p.t.Fatalf("pg_ctl start: %v\n%s\nlog:\n%s", err, out, log)
	}
}

// Stop shuts the server down the way an operator's restart does (fast
// mode: sessions are ended, what was committed is kept) and waits until it
// has stopped.
func (p *Postgres) Stop() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := p.pgctl(ctx, "stop", "-m", "fast", "-w", "-t", "50"); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart is Stop then Start.
func (p *Postgres) Restart() {
	p.t.Helper()
	p.Stop()
	p.Start()
}

// Exec runs sql through the Unix socket (whether or not TCP is on).
func (p *Postgres) Exec(sql string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.SocketDSN())
	if err != nil {
		p.t.Fatalf("connect %s: %v", p.SocketDSN(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		p.t.Fatalf("%s: %v", sql, err)
	}
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	return p.command(ctx, filepath.Join(p.bin, "pg_ctl"), append([]string{"-D", p.data()}, args...)...).CombinedOutput()
}

// command runs name as the postgres user when we are root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = "/" // the postgres user may not enter the test's directory
	return cmd
}

// postgresBin finds the newest server binaries of the Debian packages.
func postgresBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	missingPostgres(t, "no Postgres server binaries under /usr/lib/postgresql (scripts/test-deps.sh installs them)")
	return ""
}

// missingPostgres skips t, or fails it under CI=true, when what the private
// Postgres needs is missing.
func missingPostgres(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true)", args...)
	}
	t.Skipf(format, args...)
}

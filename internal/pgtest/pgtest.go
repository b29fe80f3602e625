package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTimeout bounds how long a server may take to accept connections;
// it only stops a broken setup from hanging the test binary.
const startTimeout = 60 * time.Second

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	bin  string // directory of initdb, postgres, pg_ctl
	dir  string // temporary root: socket directory, log, data/
	data string
	port int
	cred *syscall.Credential // nil: run as ourselves

	mu   sync.Mutex
	cmd  *exec.Cmd     // the postmaster, nil when stopped
	done chan struct{} // closed when cmd has exited

	dbSeq atomic.Int64
}

// Start creates a cluster of its own for the calling test, with one empty
// database, and returns that database's URL. Both are removed when the test
// ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartCluster(t).CreateDatabase(t)
}

// StartCluster creates a cluster of its own for the calling test (stopped
// and deleted in t.Cleanup). Use it for tests that stop or restart the
// server; everything else should use Shared.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := newCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.destroy(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error // a failed start is not retried by every test
}

// Shared creates a fresh database in the test binary's shared cluster
// (starting the cluster on first use) and returns its URL. The database is
// dropped when the test ends; the cluster lives until StopShared.
func Shared(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = newCluster()
	}
	c, err := shared.c, shared.err
	shared.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: shared cluster: %v", err)
	}
	return c.CreateDatabase(t)
}

// StopShared stops and deletes the shared cluster, if one was started. Call
// it from TestMain after m.Run; the server would otherwise only die with the
// test binary and leave its directory behind.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		if err := shared.c.destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	shared.c, shared.err = nil, nil
}

// Port returns the TCP port the cluster listens on (127.0.0.1 only).
func (c *Cluster) Port() int { return c.port }

// URL returns the connection URL of database db as the superuser.
func (c *Cluster) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates an empty database and returns its URL. It is
// dropped (closing any connection left open) when the test ends.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := "pgtest_" + strconv.FormatInt(c.dbSeq.Add(1), 10)
	if err := c.admin(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// A test that left the server stopped has nothing to drop; the
		// directory goes with the cluster.
		if !c.Running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := c.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c.URL(name)
}

// admin runs one statement on the maintenance database. CREATE and DROP
// DATABASE cannot run in a transaction, so this is a plain connection.
func (c *Cluster) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the maintenance database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// Running reports whether the server process is up.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// Stop stops the server abruptly (pg_ctl stop -m immediate: no checkpoint,
// clients are cut off as in a crash). The data directory is kept, so
// StartAgain brings the same databases back on the same port.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// StartAgain starts a stopped server on the same data directory and port,
// and waits until it accepts connections (after crash recovery).
func (c *Cluster) StartAgain(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart is Stop then StartAgain.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.StartAgain(t)
}

func newCluster() (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir(): its parents are 0700 and owned by root, so the
	// postgres user could not reach a directory below them.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), cred: cred}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	// --no-sync and the trust method: see the package documentation.
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A free port can be taken by someone else between our check and the
	// server's bind; trying a few ports makes that race harmless.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err == nil {
			if err = c.start(); err == nil {
				return c, nil
			}
		}
		if attempt == 4 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// run runs a PostgreSQL client program as the server's user and returns
// its combined output.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	return cmd.CombinedOutput()
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("the server is already running")
	}
	logPath := filepath.Join(c.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(c.port),
		"-c", "unix_socket_directories="+c.dir,
		"-c", "max_connections=200",
		// Test speed only; see the package documentation.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
	)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The server is our child and is killed if the test binary dies, so a
	// crashed test run leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	if err := c.waitReady(done); err != nil {
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w\n%s", err, logTail(logPath, logStart))
	}
	c.cmd, c.done = cmd, done
	return nil
}

// waitReady polls until the server accepts a connection, exits, or
// startTimeout passes.
func (c *Cluster) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres")+"&connect_timeout=2")
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			return errors.New("postgres exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %v: %w", startTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	out, err := c.run("pg_ctl", "stop", "-D", c.data, "-m", "immediate", "-w")
	if err != nil {
		// Whatever went wrong, the server must not outlive the test.
		c.cmd.Process.Kill()
	}
	<-c.done
	c.cmd, c.done = nil, nil
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

func (c *Cluster) destroy() error {
	err := c.stop()
	return errors.Join(err, os.RemoveAll(c.dir))
}

// findBinaries returns the directory holding initdb, postgres and pg_ctl:
// the newest /usr/lib/postgresql/<version>/bin, else the one on $PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if hasAll(d, "initdb", "postgres", "pg_ctl") {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres, pg_ctl) under /usr/lib/postgresql/*/bin or on $PATH: run make deps")
}

func hasAll(dir string, progs ...string) bool {
	for _, p := range progs {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// serverCredential returns the postgres OS user's credential when we are
// root (initdb and postgres refuse to run as root), nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a \"postgres\" OS user to run the server as (run make deps): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	// An empty Groups drops root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns what the server logged since offset, shortened, for
// start-up error messages.
func logTail(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	b = b[offset:]
	const limit = 4000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(bytes.TrimSpace(b))
}

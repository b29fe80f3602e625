// Package pgtest runs throwaway PostgreSQL clusters for tests.
//
// A cluster is made with initdb in a fresh temporary directory, listens on
// 127.0.0.1 only (on a free port, with its Unix socket inside that
// directory), trusts every local connection (it holds nothing but test
// data and nobody else can reach it), and is stopped with
// "pg_ctl stop -m immediate" and deleted when the test ends. The server
// binaries are looked up under /usr/lib/postgresql/*/bin (Debian's layout,
// newest version first) and then on $PATH; when none is found the test
// fails with "run make deps" rather than skipping, because a skipped
// database test looks like a passing one in CI.
//
// initdb and postgres refuse to run as root. When the test runs as root,
// every PostgreSQL process is started as the "postgres" OS user (through
// the credential of the child process, not through su or runuser, so that
// the server is our direct child and dies with the test binary), and the
// temporary directory is handed to that user.
//
// For speed, and only here, the servers run with fsync and
// full_page_writes off: a test cluster never has to survive a power cut
// (or an OS crash), and these settings make creating databases and
// committing cheap. Production code must never copy these settings.
// synchronous_commit stays on on purpose: with it off, a commit can be
// acknowledged before its WAL leaves the server's memory, and Stop (an
// immediate shutdown, which is a crash) would lose it, so connection-loss
// tests would see acknowledged writes vanish.
//
// Most tests want Shared: one cluster per test binary, a new database per
// call, so that hundreds of tests cost one initdb. The cluster is stopped by
// StopShared, called from TestMain. Tests that stop the server (connection
// loss) use StartCluster, which gives them a cluster of their own.
package pgtest

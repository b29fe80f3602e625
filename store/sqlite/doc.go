// Package sqlite is the default store.Store backend: one SQLite file, opened
// through modernc.org/sqlite (pure Go, no cgo).
//
// # Durability
//
// A certificate handed to a client must still be in the database after a
// kill -9 or a power cut, and an order must never be left half-written. The
// database runs in WAL mode with synchronous=FULL by default: every commit
// appends its pages to the write-ahead log and fsyncs the log before the
// commit returns, so whatever CompleteOrder reported as stored is on stable
// storage. (synchronous=NORMAL in WAL mode only fsyncs at checkpoints: it
// survives a process crash, because the log is in the OS page cache, but the
// last transactions can vanish on power loss. That is fine for a benchmark,
// not for a CA, so it is only available through WithSynchronous.) Every
// multi-row change (an order and its authorizations; a certificate and its
// order) is a single transaction, and SQLite's journal makes it atomic
// across crashes. TestCrashSafety SIGKILLs a writer to check this.
//
// # Concurrency
//
// SQLite allows one writer at a time. Rather than letting several
// connections race for the write lock (and fail with SQLITE_BUSY, or
// deadlock when two deferred transactions both try to upgrade), all writes go
// through a dedicated connection pool of size one; database/sql queues the
// callers, without any mutex of ours. Write transactions start with BEGIN
// IMMEDIATE, so that another process (the CLI, say) is waited for through
// busy_timeout at the start of a transaction instead of failing midway.
// Reads use a separate pool of query_only connections that, thanks to WAL,
// never wait for the writer and always see the last committed state.
//
// Optimistic concurrency is a version column: an update is
// "UPDATE … SET …, version = version + 1 WHERE id = ? AND version = ?", and
// zero rows affected means ErrConflict (or ErrNotFound if the row is gone).
//
// # Storage format
//
// Times are INTEGER microseconds since the Unix epoch, UTC (NULL for the
// zero time). Microseconds because PostgreSQL's timestamptz has that
// precision, so both backends round-trip the same values (see
// storetest.TimePrecision); integers because they compare and index
// cheaply and have no time-zone or text-format ambiguity. Lists and nested
// values (contacts, identifiers, authorization IDs, challenges, errors) are
// JSON text columns: they are always read and written whole. The schema is
// created and upgraded by numbered migrations recorded in schema_migrations;
// a database written by a newer policyca is refused rather than misread.
package sqlite

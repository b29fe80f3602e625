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
// across crashes. TestCrashSafety SIGKILLs a writer, with writes batched
// by group commit (below), to check this.
//
// # Concurrency
//
// SQLite allows one writer at a time. Rather than letting several
// connections race for the write lock (and fail with SQLITE_BUSY, or
// deadlock when two deferred transactions both try to upgrade), all writes go
// through a dedicated connection pool of size one. Write transactions start
// with BEGIN IMMEDIATE, so that another process (the CLI, say) is waited for
// through busy_timeout at the start of a transaction instead of failing
// midway. Reads use a separate pool of query_only connections that, thanks
// to WAL, never wait for the writer and always see the last committed state.
//
// # Group commit
//
// With synchronous=FULL every commit costs an fsync of the log (about a
// millisecond, much more under load), so one transaction per write would cap
// the CA at roughly a thousand writes per second however many requests wait,
// each queued behind the others' fsyncs. Instead every write method hands
// its work to one writer goroutine (writer.go), which takes all the writes
// queued at that moment (at most 64; it never waits for more, so a lone
// write is still one BEGIN … COMMIT with no added delay) and runs them in
// one transaction, each under its own SAVEPOINT, with one COMMIT and so one
// fsync for all. A write that fails (version conflict, unique violation,
// missing row) is rolled back to its savepoint and returns its own error;
// its neighbours are unaffected. Callers are answered only after the COMMIT
// has returned.
//
// This is exactly as durable as a transaction per write: a caller that got
// nil had its changes in a transaction whose COMMIT, with its fsync, had
// completed; a crash before that COMMIT loses the whole batch, and every
// caller of it was still waiting, so nothing reported as stored is lost. A
// batch is atomic like any transaction, and each write inside it is atomic
// thanks to its savepoint, so no write is ever half-applied. Writes of one
// batch see each other's effects in queue order, as if they had run one
// after the other, which they would have on the single connection anyway.
// If the COMMIT fails, every write of the batch gets the error, whatever its
// own outcome (nothing of the batch is stored). If a write leaves the
// transaction unusable (SQLite rolled it back by itself, or the code
// panicked), the writes before it in the batch fail with it and the ones
// after it run in the next batch. A write whose context is done before it
// starts is skipped with the context's error; once started it runs to the
// end and its caller waits for the outcome, so that no caller returns while
// its write may still commit. The statements of a batch never use a
// caller's context: cancelling one would interrupt the connection and roll
// back everybody's writes.
//
// Write methods therefore work on copies and change the caller's structs
// only once the write has returned nil. A write function must use only the
// transaction it is given: the writer connection is inside it, so anything
// else on the writer pool would deadlock.
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

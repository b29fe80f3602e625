package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order; migration i brings the schema to version
// i+1. Never edit or reorder a released migration: add a new one.
var migrations = []string{
	// 1: the objects of store.Store and the indexes of their hot lookups.
	`
CREATE TABLE accounts (
	id             TEXT PRIMARY KEY,
	provisioner    TEXT NOT NULL,
	key_thumbprint TEXT NOT NULL,
	key_jwk        BLOB NOT NULL,
	contact        TEXT NOT NULL,     -- JSON array of strings
	status         TEXT NOT NULL,
	terms_agreed   INTEGER NOT NULL,
	eab_key_id     TEXT NOT NULL,
	created_at     INTEGER NOT NULL,  -- unix microseconds, UTC
	version        INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_key_thumbprint ON accounts (key_thumbprint);

CREATE TABLE orders (
	-- seq gives "oldest first" for ListOrderIDs independently of clocks.
	seq              INTEGER PRIMARY KEY,
	id               TEXT NOT NULL UNIQUE,
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	provisioner      TEXT NOT NULL,
	status           TEXT NOT NULL,
	expires          INTEGER,
	identifiers      TEXT NOT NULL,  -- JSON array of identifiers
	not_before       INTEGER,
	not_after        INTEGER,
	authz_ids        TEXT NOT NULL,  -- JSON array of strings, in order
	certificate_id   TEXT NOT NULL,
	error            TEXT,           -- JSON problem, NULL if none
	processing_since INTEGER,
	created_at       INTEGER NOT NULL,
	version          INTEGER NOT NULL
);
CREATE INDEX orders_account ON orders (account_id, seq);

CREATE TABLE authorizations (
	id               TEXT PRIMARY KEY,
	account_id       TEXT NOT NULL REFERENCES accounts (id),
	order_id         TEXT NOT NULL REFERENCES orders (id),
	identifier_type  TEXT NOT NULL,
	identifier_value TEXT NOT NULL,
	wildcard         INTEGER NOT NULL,
	status           TEXT NOT NULL,
	expires          INTEGER,
	challenges       TEXT NOT NULL,  -- JSON array of challenges
	version          INTEGER NOT NULL
);
CREATE INDEX authorizations_order ON authorizations (order_id);

-- No foreign keys: a signed certificate must always be recordable.
CREATE TABLE certificates (
	id                TEXT PRIMARY KEY,
	serial            TEXT NOT NULL,
	account_id        TEXT NOT NULL,
	order_id          TEXT NOT NULL,
	provisioner       TEXT NOT NULL,
	der               BLOB NOT NULL,
	chain_pem         BLOB NOT NULL,
	not_before        INTEGER,
	not_after         INTEGER,
	names             TEXT NOT NULL, -- JSON array of identifiers
	revoked_at        INTEGER,
	revocation_reason INTEGER NOT NULL,
	policy_revision   TEXT NOT NULL,
	decision_id       TEXT NOT NULL,
	created_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX certificates_serial ON certificates (serial);
`,
	// 2: indexes for the background jobs (crash recovery, CRLs) and for
	// finding an order's certificate.
	`
CREATE INDEX orders_processing ON orders (status, processing_since);
CREATE INDEX certificates_order ON certificates (order_id);
CREATE INDEX certificates_revoked ON certificates (not_after) WHERE revoked_at IS NOT NULL;
`,
	// 3: External Account Binding keys and the policy decision log.
	`
-- hmac_key is the raw secret. It is stored in the clear because the CA must
-- verify the client's MAC with it; what protects it is the state
-- directory's permissions on the database file (and its WAL and backups).
CREATE TABLE eab_keys (
	seq           INTEGER PRIMARY KEY,
	id            TEXT NOT NULL UNIQUE,
	provisioner   TEXT NOT NULL,
	reference     TEXT NOT NULL,
	hmac_key      BLOB NOT NULL,
	created_at    INTEGER NOT NULL,
	expires_at    INTEGER,
	revoked_at    INTEGER,
	-- NULL until the key binds an account; set once, never cleared.
	bound_account TEXT REFERENCES accounts (id),
	bound_at      INTEGER,
	policy        TEXT,            -- JSON name rules, NULL if none
	version       INTEGER NOT NULL
);
CREATE INDEX eab_keys_provisioner ON eab_keys (provisioner, created_at);

-- Append-only. seq orders entries written in the same microsecond. No
-- foreign keys: a decision about an unknown account must still be logged.
CREATE TABLE decisions (
	seq         INTEGER PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	time        INTEGER NOT NULL,
	stage       TEXT NOT NULL,
	provisioner TEXT NOT NULL,
	account_id  TEXT NOT NULL,
	eab_key_id  TEXT NOT NULL,
	identifiers TEXT NOT NULL,     -- JSON array of identifiers
	allow       INTEGER NOT NULL,
	violations  TEXT NOT NULL,     -- JSON array of violations
	lifetime    INTEGER NOT NULL,  -- nanoseconds, 0 = no cap
	revision    TEXT NOT NULL,
	eval_time   INTEGER NOT NULL,  -- nanoseconds
	error       TEXT NOT NULL,
	ra          TEXT NOT NULL,
	node        TEXT NOT NULL
);
CREATE INDEX decisions_time ON decisions (time);
CREATE INDEX decisions_account ON decisions (account_id, time);
CREATE INDEX decisions_allow ON decisions (allow, time);
`,
	// 4: secrets shared by every node of the database (the nonce key) and
	// redeemed nonces, so that any node refuses a replay.
	`
CREATE TABLE cluster_secrets (
	name       TEXT PRIMARY KEY,
	secret     BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
-- WITHOUT ROWID: the nonce is the key; lookups and inserts touch one b-tree.
CREATE TABLE used_nonces (
	nonce   TEXT PRIMARY KEY,
	expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX used_nonces_expires ON used_nonces (expires);
`,
	// 5: the registry of registration authorities and their one-time
	// enrolment tokens (only a hash of each secret).
	`
CREATE TABLE ras (
	name           TEXT PRIMARY KEY,
	provisioners   TEXT NOT NULL,    -- JSON array of strings
	disabled_at    INTEGER,
	enrolled_at    INTEGER,
	cert_serial    TEXT NOT NULL,
	cert_not_after INTEGER,
	created_at     INTEGER NOT NULL,
	version        INTEGER NOT NULL
);
CREATE TABLE ra_tokens (
	id           TEXT PRIMARY KEY,
	ra_name      TEXT NOT NULL,
	provisioners TEXT NOT NULL,      -- JSON array of strings
	secret_hash  BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	used_at      INTEGER
);
`,
	// 6: an account's authorizations by identifier, for revocation by an
	// account that holds valid authorizations for a certificate's names
	// (RFC 8555 §7.6).
	`
CREATE INDEX authorizations_account_identifier ON authorizations (account_id, identifier_type, identifier_value);
`,
}

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

// migrate brings the database up to version target in one transaction, so
// a crash or a concurrent opener never sees a half-migrated schema: BEGIN
// IMMEDIATE makes a second process wait for the first to finish.
func migrate(ctx context.Context, db *sql.DB, target int) error {
	if target > len(migrations) {
		return fmt.Errorf("sqlite: no migration to version %d", target)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin migration: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this program's (%d); refusing to open it", current, len(migrations))
	}
	for v := current + 1; v <= target; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			v, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: record migration %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit migrations: %w", err)
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order; migration i brings the schema to version
// i+1. Never edit or reorder a released migration: add a new one. Each runs
// inside the migration transaction, so statements that PostgreSQL refuses
// in a transaction (CREATE INDEX CONCURRENTLY, ALTER TYPE … ADD VALUE
// before PostgreSQL 12) need a different mechanism.
//
// Conventions: times are timestamptz (NULL for "absent"), lists and nested
// values are jsonb, binary blobs are bytea, and every mutable row has a
// version column for optimistic concurrency. Constraint and index names are
// spelled out because mapErr recognises the serial's.
var migrations = []string{
	// 1: the objects of store.Store and the indexes of the ACME hot path.
	`
CREATE TABLE accounts (
	id             text PRIMARY KEY,
	provisioner    text NOT NULL,
	key_thumbprint text NOT NULL,
	key_jwk        bytea NOT NULL,
	contact        jsonb NOT NULL,  -- array of strings
	status         text NOT NULL,
	terms_agreed   boolean NOT NULL,
	eab_key_id     text NOT NULL,
	created_at     timestamptz NOT NULL,
	version        bigint NOT NULL
);
CREATE UNIQUE INDEX accounts_key_thumbprint ON accounts (key_thumbprint);

CREATE TABLE orders (
	id               text PRIMARY KEY,
	-- seq gives "oldest first" for ListOrderIDs independently of the
	-- clocks of several nodes.
	seq              bigint GENERATED ALWAYS AS IDENTITY,
	account_id       text NOT NULL REFERENCES accounts (id),
	provisioner      text NOT NULL,
	status           text NOT NULL,
	expires          timestamptz,
	identifiers      jsonb NOT NULL,  -- array of {type, value}
	not_before       timestamptz,
	not_after        timestamptz,
	authz_ids        jsonb NOT NULL,  -- array of strings, in order
	certificate_id   text NOT NULL,
	error            jsonb,           -- problem, NULL if none
	processing_since timestamptz,
	created_at       timestamptz NOT NULL,
	version          bigint NOT NULL
);
CREATE UNIQUE INDEX orders_account_seq ON orders (account_id, seq);
-- Crash recovery scans only the few orders in "processing".
CREATE INDEX orders_processing ON orders (processing_since) WHERE status = 'processing';

CREATE TABLE authorizations (
	id               text PRIMARY KEY,
	account_id       text NOT NULL REFERENCES accounts (id),
	order_id         text NOT NULL REFERENCES orders (id),
	identifier_type  text NOT NULL,
	identifier_value text NOT NULL,
	wildcard         boolean NOT NULL,
	status           text NOT NULL,
	expires          timestamptz,
	challenges       jsonb NOT NULL,  -- array of challenges
	version          bigint NOT NULL
);
CREATE INDEX authorizations_order ON authorizations (order_id);
CREATE INDEX authorizations_account ON authorizations (account_id);

-- No foreign keys: a signed certificate must always be recordable.
CREATE TABLE certificates (
	id                text PRIMARY KEY,
	serial            text NOT NULL,
	account_id        text NOT NULL,
	order_id          text NOT NULL,
	provisioner       text NOT NULL,
	der               bytea NOT NULL,
	chain_pem         bytea NOT NULL,
	not_before        timestamptz,
	not_after         timestamptz,
	names             jsonb NOT NULL,  -- array of {type, value}
	revoked_at        timestamptz,
	revocation_reason integer NOT NULL,
	policy_revision   text NOT NULL,
	decision_id       text NOT NULL,
	created_at        timestamptz NOT NULL
);
CREATE UNIQUE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_order ON certificates (order_id);
-- CRLs list the revoked certificates that have not expired.
CREATE INDEX certificates_revoked ON certificates (not_after) WHERE revoked_at IS NOT NULL;
`,
	// 2: External Account Binding keys and the policy decision log.
	`
-- hmac_key is the raw secret: the CA must verify the client's MAC with it.
-- What protects it is access to the database (roles, network, backups).
CREATE TABLE eab_keys (
	id            text PRIMARY KEY,
	-- seq orders keys created in the same microsecond.
	seq           bigint GENERATED ALWAYS AS IDENTITY,
	provisioner   text NOT NULL,
	reference     text NOT NULL,
	hmac_key      bytea NOT NULL,
	created_at    timestamptz NOT NULL,
	expires_at    timestamptz,
	revoked_at    timestamptz,
	-- NULL until the key binds an account; set once, never cleared.
	bound_account text REFERENCES accounts (id),
	bound_at      timestamptz,
	policy        jsonb,           -- name rules, NULL if none
	version       bigint NOT NULL
);
CREATE INDEX eab_keys_provisioner ON eab_keys (provisioner, created_at, seq);
CREATE INDEX eab_keys_created ON eab_keys (created_at, seq);

-- Append-only. seq orders entries written in the same microsecond. No
-- foreign keys: a decision about an unknown account must still be logged.
CREATE TABLE decisions (
	id          text PRIMARY KEY,
	seq         bigint GENERATED ALWAYS AS IDENTITY,
	time        timestamptz NOT NULL,
	stage       text NOT NULL,
	provisioner text NOT NULL,
	account_id  text NOT NULL,
	eab_key_id  text NOT NULL,
	identifiers jsonb NOT NULL,    -- array of identifiers
	allow       boolean NOT NULL,
	violations  jsonb NOT NULL,    -- array of violations
	lifetime    bigint NOT NULL,   -- nanoseconds, 0 = no cap
	revision    text NOT NULL,
	eval_time   bigint NOT NULL,   -- nanoseconds
	error       text NOT NULL,
	ra          text NOT NULL,
	node        text NOT NULL
);
CREATE INDEX decisions_time ON decisions (time, seq);
CREATE INDEX decisions_account ON decisions (account_id, time, seq);
CREATE INDEX decisions_denied ON decisions (time, seq) WHERE NOT allow;
`,
	// 3: secrets shared by every node (the nonce key) and redeemed nonces,
	// so that a nonce issued by one node is accepted once by any node.
	`
CREATE TABLE cluster_secrets (
	name       text PRIMARY KEY,
	secret     bytea NOT NULL,
	created_at timestamptz NOT NULL
);
CREATE TABLE used_nonces (
	nonce   text PRIMARY KEY,
	expires timestamptz NOT NULL
);
CREATE INDEX used_nonces_expires ON used_nonces (expires);
`,
	// 4: the registry of registration authorities and their one-time
	// enrolment tokens (only a hash of each secret).
	`
CREATE TABLE ras (
	name           text PRIMARY KEY,
	provisioners   jsonb NOT NULL,
	disabled_at    timestamptz,
	enrolled_at    timestamptz,
	cert_serial    text NOT NULL,
	cert_not_after timestamptz,
	created_at     timestamptz NOT NULL,
	version        bigint NOT NULL
);
CREATE TABLE ra_tokens (
	id           text PRIMARY KEY,
	ra_name      text NOT NULL,
	provisioners jsonb NOT NULL,
	secret_hash  bytea NOT NULL,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	used_at      timestamptz
);
`,
}

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

// migrationLockKey is the pg_advisory_xact_lock key that serialises
// migrations of one database: the ASCII bytes of "policyca" read as a
// big-endian int64. Advisory locks are per database, so several policyca
// databases in one cluster do not wait for each other.
const migrationLockKey int64 = 0x706f6c6963796361

// migrate brings the database up to version target in one transaction.
// Several nodes may start at once on an empty database: the advisory lock,
// taken before anything else, makes the others wait until the first has
// committed, after which they find the schema current and do nothing. The
// lock is released with the transaction, so a node that dies while
// migrating blocks nobody, and its half-applied migration is rolled back.
func migrate(ctx context.Context, tx pgx.Tx, target int) error {
	if target > len(migrations) {
		return fmt.Errorf("postgres: no migration to version %d", target)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("postgres: lock for migration: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("postgres: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("postgres: database schema version %d is newer than this program's (%d); refusing to use it", current, len(migrations))
	}
	for v := current + 1; v <= target; v++ {
		// No arguments: pgx then sends the text with the simple protocol,
		// which allows several statements in one string.
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("postgres: migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
			v, time.Now().UTC()); err != nil {
			return fmt.Errorf("postgres: record migration %d: %w", v, err)
		}
	}
	return nil
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// The tests of group commit make batches deterministic: holdWriter parks
// the writer goroutine inside an operation, the operations submitted
// meanwhile queue up (submitInOrder waits for each to be queued, which fixes
// their order in the batch), and releasing the writer runs them all in the
// next transaction. Store.commits then tells how many transactions ran.

// holdWriter parks the writer inside a write made with ctx until release is
// called; body, if not nil, runs first inside that write. release returns
// the parked write's result once its batch is over.
func holdWriter(t *testing.T, s *Store, ctx context.Context, body writeFunc) (release func() error) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			var err error
			if body != nil {
				err = body(ctx, tx)
			}
			close(entered)
			<-gate
			return err
		})
	}()
	<-entered
	return func() error {
		close(gate)
		return <-errc
	}
}

// waitQueued waits until n operations are queued for the parked writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for len(s.ops) < n {
		if t.Context().Err() != nil {
			t.Fatalf("%d operations queued, want %d", len(s.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// batch collects calls submitted while the writer is parked.
type batch struct {
	t     *testing.T
	s     *Store
	names []string
	errcs []chan error
}

// submit starts f in a goroutine and waits until its operation is queued,
// so that operations run in the order they are submitted.
func (b *batch) submit(name string, f func() error) {
	b.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- f() }()
	b.names = append(b.names, name)
	b.errcs = append(b.errcs, errc)
	waitQueued(b.t, b.s, len(b.errcs))
}

// results waits for every call and returns their errors by name.
func (b *batch) results() map[string]error {
	out := make(map[string]error, len(b.names))
	for i, name := range b.names {
		out[name] = <-b.errcs[i]
	}
	return out
}

func testAccount(t *testing.T, s *Store) *core.Account {
	t.Helper()
	a := &core.Account{KeyThumbprint: core.NewID(), Provisioner: "acme", Status: core.StatusValid}
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

// testOrder returns an order of acct for name with one authorization, not
// stored.
func testOrder(acct *core.Account, name string) (*core.Order, []*core.Authorization) {
	id := core.Identifier{Type: core.DNS, Value: name + ".example.internal"}
	o := &core.Order{AccountID: acct.ID, Provisioner: acct.Provisioner, Status: core.StatusPending,
		Identifiers: []core.Identifier{id}, Expires: time.Now().Add(time.Hour)}
	az := &core.Authorization{Identifier: id, Status: core.StatusPending,
		Challenges: []core.Challenge{{ID: core.NewID(), Type: core.ChallengeHTTP01, Token: core.NewID(), Status: core.StatusPending}}}
	return o, []*core.Authorization{az}
}

func storedOrder(t *testing.T, s *Store, acct *core.Account, name string) *core.Order {
	t.Helper()
	o, az := testOrder(acct, name)
	if err := s.CreateOrder(t.Context(), o, az); err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return o
}

func testCert(o *core.Order) *core.Certificate {
	return &core.Certificate{ID: core.NewID(), Serial: "1" + core.NewID(), AccountID: o.AccountID, OrderID: o.ID,
		DER: []byte{0x30}, ChainPEM: []byte("pem"), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		Names: o.Identifiers}
}

func checkErrs(t *testing.T, got map[string]error, want map[string]error) {
	t.Helper()
	for name, w := range want {
		err, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: not submitted", name)
		case w == nil && err != nil:
			t.Errorf("%s: %v, want success", name, err)
		case w != nil && !errors.Is(err, w):
			t.Errorf("%s: %v, want %v", name, err, w)
		}
	}
}

// TestGroupCommitConflicts: one batch of creates and updates, some of them
// deliberately conflicting with each other or with the database. Exactly
// the right ones fail, with their own error, and all the others commit.
func TestGroupCommitConflicts(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	acct := testAccount(t, s)
	const n = 6
	existing := make([]*core.Order, n)
	for i := range existing {
		existing[i] = storedOrder(t, s, acct, "old"+itoa(int64(i)))
	}
	commits := s.commits.Load()

	release := holdWriter(t, s, ctx, nil)
	b := &batch{t: t, s: s}
	want := map[string]error{}
	fresh := make([]*core.Order, n)
	for i := range fresh {
		o, az := testOrder(acct, "new"+itoa(int64(i)))
		fresh[i] = o
		name := "create " + itoa(int64(i))
		b.submit(name, func() error { return s.CreateOrder(ctx, o, az) })
		want[name] = nil
	}
	dup, dupAz := testOrder(acct, "dup")
	dup.ID = existing[0].ID
	b.submit("create with a taken ID", func() error { return s.CreateOrder(ctx, dup, dupAz) })
	want["create with a taken ID"] = store.ErrConflict
	ghost, ghostAz := testOrder(&core.Account{ID: "nobody", Provisioner: "acme"}, "ghost")
	b.submit("create for no account", func() error { return s.CreateOrder(ctx, ghost, ghostAz) })
	want["create for no account"] = store.ErrNotFound

	// Two updates of every existing order from the same version: the
	// first of each pair wins, the second is stale by then.
	updates := make([][2]*core.Order, n)
	for i, o := range existing {
		for k := range 2 {
			u := *o
			u.Identifiers = append(slices.Clone(o.Identifiers), core.Identifier{Type: core.DNS, Value: "k" + itoa(int64(k))})
			updates[i][k] = &u
			name := "update " + itoa(int64(i)) + "/" + itoa(int64(k))
			b.submit(name, func() error { return s.UpdateOrder(ctx, &u) })
			want[name] = []error{nil, store.ErrConflict}[k]
		}
	}
	stale := *existing[1]
	stale.Version = 0
	b.submit("stale update", func() error { return s.UpdateOrder(ctx, &stale) })
	want["stale update"] = store.ErrConflict
	missing := *existing[1]
	missing.ID = "no-such-order"
	b.submit("update of a missing order", func() error { return s.UpdateOrder(ctx, &missing) })
	want["update of a missing order"] = store.ErrNotFound

	// An order created and then updated within the batch: the version
	// check sees the batch's own uncommitted writes.
	x, xAz := testOrder(acct, "x")
	x.ID = core.NewID()
	b.submit("create x", func() error { return s.CreateOrder(ctx, x, xAz) })
	want["create x"] = nil
	x1 := *x
	x1.Version, x1.Status = 1, core.StatusReady
	b.submit("update x", func() error { return s.UpdateOrder(ctx, &x1) })
	want["update x"] = nil
	x2 := *x
	x2.Version = 1
	b.submit("update x again", func() error { return s.UpdateOrder(ctx, &x2) })
	want["update x again"] = store.ErrConflict

	if err := release(); err != nil {
		t.Fatalf("parked write: %v", err)
	}
	checkErrs(t, b.results(), want)
	if got := s.commits.Load() - commits; got != 2 {
		t.Errorf("%d commits, want 2 (the parked write, then one for the %d queued operations)", got, len(b.names))
	}

	for i, o := range existing {
		got, err := s.GetOrder(ctx, o.ID)
		if err != nil {
			t.Fatalf("GetOrder: %v", err)
		}
		if got.Version != 2 || !slices.Equal(got.Identifiers, updates[i][0].Identifiers) {
			t.Errorf("order %d = version %d, %v; want version 2, %v", i, got.Version, got.Identifiers, updates[i][0].Identifiers)
		}
		if updates[i][0].Version != 2 || updates[i][1].Version != 1 {
			t.Errorf("order %d: caller versions %d and %d, want 2 and 1 (untouched)", i, updates[i][0].Version, updates[i][1].Version)
		}
	}
	for _, o := range fresh {
		if _, err := s.GetAuthorizations(ctx, o.AuthzIDs); err != nil || o.Version != 1 {
			t.Errorf("fresh order %s (version %d): authorizations: %v", o.ID, o.Version, err)
		}
	}
	if dup.Version != 0 || ghost.ID != "" || ghostAz[0].ID != "" {
		t.Errorf("failed creates changed their arguments: %+v, %+v", dup, ghost)
	}
	if _, err := s.GetOrder(ctx, ghost.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("order of the failed create: %v", err)
	}
	if got, err := s.GetOrder(ctx, x.ID); err != nil || got.Version != 2 || got.Status != core.StatusReady {
		t.Errorf("order x = %+v, %v; want version 2, ready", got, err)
	}
}

// TestGroupCommitFailedOpKeepsNeighbours: an operation that fails half-way
// (CompleteOrder stores the certificate, then finds the order stale) is
// undone to its savepoint, and only it.
func TestGroupCommitFailedOpKeepsNeighbours(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	acct := testAccount(t, s)
	oa, ob, oc := storedOrder(t, s, acct, "a"), storedOrder(t, s, acct, "b"), storedOrder(t, s, acct, "c")
	ca, cb, cc := testCert(oa), testCert(ob), testCert(oc)
	dupSerial := testCert(oa)
	dupSerial.Serial = ca.Serial
	staleB := *ob
	staleB.Version = 0
	for _, o := range []*core.Order{oa, &staleB, oc} {
		o.Status = core.StatusValid
	}
	oa.CertificateID, staleB.CertificateID, oc.CertificateID = ca.ID, cb.ID, cc.ID
	commits := s.commits.Load()

	release := holdWriter(t, s, ctx, nil)
	b := &batch{t: t, s: s}
	b.submit("complete a", func() error { return s.CompleteOrder(ctx, oa, ca) })
	b.submit("complete stale b", func() error { return s.CompleteOrder(ctx, &staleB, cb) })
	b.submit("duplicate serial", func() error { return s.PutCertificate(ctx, dupSerial) })
	b.submit("complete c", func() error { return s.CompleteOrder(ctx, oc, cc) })
	b.submit("revoke a", func() error { return s.RevokeCertificate(ctx, ca.Serial, 1, time.Time{}) })
	b.submit("revoke a again", func() error { return s.RevokeCertificate(ctx, ca.Serial, 1, time.Time{}) })
	b.submit("revoke unknown", func() error { return s.RevokeCertificate(ctx, "ffff", 1, time.Time{}) })
	if err := release(); err != nil {
		t.Fatalf("parked write: %v", err)
	}
	checkErrs(t, b.results(), map[string]error{
		"complete a":       nil,
		"complete stale b": store.ErrConflict,
		"duplicate serial": store.ErrDuplicateSerial,
		"complete c":       nil,
		"revoke a":         nil,
		"revoke a again":   store.ErrAlreadyRevoked,
		"revoke unknown":   store.ErrNotFound,
	})
	if got := s.commits.Load() - commits; got != 2 {
		t.Errorf("%d commits, want 2", got)
	}

	if got, err := s.GetCertificate(ctx, ca.ID); err != nil || got.RevokedAt.IsZero() {
		t.Errorf("certificate a = %+v, %v; want stored and revoked", got, err)
	}
	if got, err := s.GetCertificate(ctx, cc.ID); err != nil || got.Serial != cc.Serial {
		t.Errorf("certificate c = %+v, %v", got, err)
	}
	// b's certificate was inserted before its order turned out stale.
	if _, err := s.GetCertificate(ctx, cb.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate of the stale completion: %v, want ErrNotFound", err)
	}
	if _, err := s.GetCertificate(ctx, dupSerial.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("certificate with the duplicate serial: %v, want ErrNotFound", err)
	}
	for _, c := range []struct {
		o       *core.Order
		status  core.Status
		version int64
	}{{oa, core.StatusValid, 2}, {ob, core.StatusPending, 1}, {oc, core.StatusValid, 2}} {
		got, err := s.GetOrder(ctx, c.o.ID)
		if err != nil || got.Status != c.status || got.Version != c.version {
			t.Errorf("order %s = %+v, %v; want %s, version %d", c.o.ID, got, err, c.status, c.version)
		}
	}
}

// TestGroupCommitCommitFailure: when the COMMIT of a batch fails, every
// operation of the batch gets the error, whatever its own outcome was,
// nothing is stored, and the next batch commits normally.
func TestGroupCommitCommitFailure(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	var failing atomic.Bool
	// A deferred foreign-key violation lets every statement of the batch
	// succeed and makes the COMMIT itself fail, as a real I/O error at
	// commit would.
	s.beforeCommit = func(ctx context.Context, tx *sql.Tx, n int) error {
		if !failing.Load() || n < 2 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO authorizations (`+authzCols+`)
			VALUES ('orphan', 'nobody', 'nothing', 'dns', 'x', 0, 'pending', NULL, '[]', 1)`)
		return err
	}
	ctx := t.Context()
	acct := testAccount(t, s)
	old := storedOrder(t, s, acct, "old")
	commits := s.commits.Load()

	failing.Store(true)
	release := holdWriter(t, s, ctx, nil)
	b := &batch{t: t, s: s}
	var created []*core.Order
	for i := range 3 {
		o, az := testOrder(acct, "new"+itoa(int64(i)))
		created = append(created, o)
		b.submit("create "+itoa(int64(i)), func() error { return s.CreateOrder(ctx, o, az) })
	}
	upd := *old
	upd.Status = core.StatusReady
	b.submit("update", func() error { return s.UpdateOrder(ctx, &upd) })
	stale := *old
	stale.Version = 0
	b.submit("stale update", func() error { return s.UpdateOrder(ctx, &stale) })
	if err := release(); err != nil {
		t.Fatalf("parked write (a batch of its own): %v", err)
	}
	for name, err := range b.results() {
		if err == nil || !strings.Contains(err.Error(), "commit") || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Errorf("%s: %v, want the COMMIT's error", name, err)
		}
	}
	if got := s.commits.Load() - commits; got != 1 {
		t.Errorf("%d commits, want 1 (the parked write's)", got)
	}
	for _, o := range created {
		if o.ID != "" || o.Version != 0 {
			t.Errorf("failed create changed its argument: %+v", o)
		}
	}
	if upd.Version != 1 {
		t.Errorf("failed update changed the caller's version to %d", upd.Version)
	}
	if got, err := s.GetOrder(ctx, old.ID); err != nil || got.Version != 1 || got.Status != core.StatusPending {
		t.Errorf("order after the failed batch = %+v, %v; want unchanged", got, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d orders stored (%v), want 1", n, err)
	}

	// The writer connection was left outside any transaction.
	failing.Store(false)
	release = holdWriter(t, s, ctx, nil)
	b = &batch{t: t, s: s}
	b.submit("update", func() error { return s.UpdateOrder(ctx, &upd) })
	o, az := testOrder(acct, "after")
	b.submit("create", func() error { return s.CreateOrder(ctx, o, az) })
	if err := release(); err != nil {
		t.Fatalf("parked write: %v", err)
	}
	checkErrs(t, b.results(), map[string]error{"update": nil, "create": nil})
}

// TestGroupCommitBrokenTransaction: an operation that leaves the
// transaction unusable (SQLite rolled it back, or the code panicked) fails
// the operations before it in the batch, which were undone with it, while
// the ones after it run in the next batch.
func TestGroupCommitBrokenTransaction(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	acct := testAccount(t, s)
	breakers := []struct {
		name string
		fn   writeFunc
		want string
	}{
		{"rolled back", func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "ROLLBACK"); err != nil {
				return err
			}
			return errors.New("interrupted")
		}, "interrupted"},
		{"panic", func(context.Context, *sql.Tx) error { panic("bug") }, "panicked: bug"},
	}
	for _, br := range breakers {
		t.Run(br.name, func(t *testing.T) {
			before, beforeAz := testOrder(acct, "before")
			after, afterAz := testOrder(acct, "after")
			release := holdWriter(t, s, ctx, nil)
			b := &batch{t: t, s: s}
			b.submit("before", func() error { return s.CreateOrder(ctx, before, beforeAz) })
			b.submit("breaker", func() error { return s.write(ctx, br.fn) })
			b.submit("after", func() error { return s.CreateOrder(ctx, after, afterAz) })
			if err := release(); err != nil {
				t.Fatalf("parked write: %v", err)
			}
			got := b.results()
			if err := got["before"]; err == nil || !strings.Contains(err.Error(), "batch aborted") {
				t.Errorf("op before the breaker: %v, want batch aborted", err)
			}
			if err := got["breaker"]; err == nil || !strings.Contains(err.Error(), br.want) {
				t.Errorf("breaker: %v, want %q", err, br.want)
			}
			if err := got["after"]; err != nil {
				t.Errorf("op after the breaker: %v", err)
			}
			if before.ID != "" {
				t.Errorf("aborted create changed its argument: %+v", before)
			}
			var n int
			if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE identifiers LIKE '%before%'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d orders of the aborted create stored (%v)", n, err)
			}
			if _, err := s.GetOrder(ctx, after.ID); err != nil {
				t.Errorf("order of the create after the breaker: %v", err)
			}
		})
	}
}

// TestGroupCommitContext: an operation cancelled while queued returns at
// once and never runs; one cancelled while running completes and commits,
// and its caller waits for that.
func TestGroupCommitContext(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	parkedCtx, cancelParked := context.WithCancel(ctx)
	parkedThumb := core.NewID()
	release := holdWriter(t, s, parkedCtx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.insAccount).ExecContext(ctx, core.NewID(), "acme", parkedThumb, []byte{}, "[]",
			string(core.StatusValid), true, "", time.Now().UnixMicro())
		return mapErr(err)
	})
	cancelParked()

	queuedCtx, cancelQueued := context.WithCancel(ctx)
	queued := &core.Account{KeyThumbprint: core.NewID(), Status: core.StatusValid}
	errc := make(chan error, 1)
	go func() { errc <- s.CreateAccount(queuedCtx, queued) }()
	waitQueued(t, s, 1)
	cancelQueued()
	// The writer is still parked: the caller did not wait for it.
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued write: %v, want context.Canceled", err)
	}

	if err := release(); err != nil {
		t.Fatalf("write cancelled while running: %v, want its own result (nil)", err)
	}
	if _, err := s.GetAccountByThumbprint(ctx, parkedThumb); err != nil {
		t.Errorf("account of the write cancelled while running: %v", err)
	}
	// A write after the skipped one has been through the writer.
	testAccount(t, s)
	if _, err := s.GetAccountByThumbprint(ctx, queued.KeyThumbprint); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account of the cancelled queued write: %v, want ErrNotFound", err)
	}
	if queued.ID != "" || queued.Version != 0 {
		t.Errorf("cancelled write changed its argument: %+v", queued)
	}

	// The writer's side of the race: a context done before the op starts.
	done, cancel := context.WithCancel(ctx)
	cancel()
	op := &writeOp{ctx: done, done: make(chan error, 1)}
	if claim(op) {
		t.Fatal("claimed an operation whose context is done")
	}
	if err := <-op.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("skipped op answered %v", err)
	}
}

// TestGroupCommitClose: Close finishes the writes it has accepted, and
// refuses the ones submitted after it.
func TestGroupCommitClose(t *testing.T) {
	path := t.TempDir() + "/db"
	s := mustOpen(t, path)
	ctx := t.Context()
	release := holdWriter(t, s, ctx, nil)
	b := &batch{t: t, s: s}
	accts := make([]*core.Account, 3)
	for i := range accts {
		a := &core.Account{KeyThumbprint: core.NewID(), Status: core.StatusValid}
		accts[i] = a
		b.submit("create "+itoa(int64(i)), func() error { return s.CreateAccount(ctx, a) })
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close cannot finish while the writer is parked.
	for {
		s.wmu.RLock()
		c := s.closed
		s.wmu.RUnlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.CreateAccount(ctx, &core.Account{KeyThumbprint: core.NewID()}); !errors.Is(err, errClosed) {
		t.Errorf("write after Close: %v, want errClosed", err)
	}
	if err := release(); err != nil {
		t.Fatalf("parked write: %v", err)
	}
	for name, err := range b.results() {
		if err != nil {
			t.Errorf("%s, accepted before Close: %v", name, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = mustOpen(t, path)
	defer s.Close()
	for _, a := range accts {
		if _, err := s.GetAccount(ctx, a.ID); err != nil {
			t.Errorf("account written before Close: %v", err)
		}
	}
}

package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// DefaultMaxRecordSize is the record size the large-record subtest writes
// unless Factory.MaxRecordSize says less.
const DefaultMaxRecordSize = 16 << 20

// Factory tells the suite how to open the backend under test.
type Factory struct {
	// Open opens the storage kept in dir, creating it when dir is empty.
	// The suite calls it again on the same dir after Close to check
	// durability (when Persistent) and registers Close with t.Cleanup
	// itself. Required.
	Open func(t testing.TB, dir string) (storage.Storage, error)
	// Persistent says that a storage reopened on the same dir sees what
	// was committed before Close. False (memstorage) skips the
	// durability, reopen and crash subtests.
	Persistent bool
	// Crash, if set, damages the on-disk data of the closed storage in
	// dir the way mode says, as a kill -9 or a power loss would. Nil
	// skips the crash recovery subtest.
	Crash func(dir string, mode CrashMode) error
	// MaxRecordSize is the largest Data the backend (or its transport)
	// accepts; 0 means DefaultMaxRecordSize. A backend that states less
	// than 16 MiB does not meet the bar; it is for transports
	// with a known smaller limit.
	MaxRecordSize int
	// CollectsGarbage says that the backend frees unreachable objects
	// as commits make them unreachable, without Pack (packless). It
	// enables a subtest that checks exactly that. Every other subtest
	// keeps each object it stores reachable from the root, so both kinds
	// of backend run them unchanged.
	CollectsGarbage bool
}

// CrashMode says how Factory.Crash damages a closed storage.
type CrashMode int

const (
	// CrashTruncate cuts bytes off the end of the newest data file, like
	// a write torn by a kill -9 or a power loss.
	CrashTruncate CrashMode = iota + 1
	// CrashGarbage overwrites the last bytes of the newest data file with
	// garbage, like a sector the disk never finished writing.
	CrashGarbage
)

// CrashModes lists every mode, in the order the suite applies them.
var CrashModes = []CrashMode{CrashTruncate, CrashGarbage}

func (m CrashMode) String() string {
	switch m {
	case CrashTruncate:
		return "truncate"
	case CrashGarbage:
		return "garbage"
	}
	return fmt.Sprintf("CrashMode(%d)", int(m))
}

// Run runs every subtest of the conformance suite against the backend f
// opens. Subtests that need a capability the backend lacks check that it
// returns storage.ErrNotSupported instead. testing.Short() shrinks the
// heavy subtests.
func Run(t *testing.T, f Factory) {
	if f.Open == nil {
		t.Fatal("storagetest: Factory.Open is nil")
	}
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) { st.fn(t, f) })
	}
}

var subtests = []struct {
	name string
	fn   func(*testing.T, Factory)
}{
	{"BasicLoadStore", testBasicLoadStore},
	{"Conflicts", testConflicts},
	{"LoadBefore", testLoadBefore},
	{"MVCCDuringCommits", testMVCCDuringCommits},
	{"NewOidsUnique", testNewOidsUnique},
	{"AbortLeavesNoTrace", testAbortLeavesNoTrace},
	{"Durability", testDurability},
	{"History", testHistory},
	{"Undo", testUndo},
	{"Pack", testPack},
	{"Iterate", testIterate},
	{"LargeRecords", testLargeRecords},
	{"ManySmallTransactions", testManySmallTransactions},
	{"ConcurrentReadersDuringPack", testConcurrentReadersDuringPack},
	{"CrashRecovery", testCrashRecovery},
	{"CommitLockWaits", testCommitLockWaits},
	{"TidsIncrease", testTidsIncrease},
	{"OddInput", testOddInput},
	{"AfterClose", testAfterClose},
	{"GarbageCollection", testGarbageCollection},
	{"OnePhaseCommit", testOnePhaseCommit},
}

// Commit runs one whole two-phase commit of recs and returns its tid. On
// any error it aborts the transaction and returns the error (a vote
// conflict matches storage.ErrConflict). It is exported for other
// packages' tests.
func Commit(ctx context.Context, st storage.Storage, meta storage.TxMeta, recs ...storage.Record) (storage.Tid, error) {
	txn, err := st.Begin(ctx, meta)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	for _, r := range recs {
		if err := txn.Store(ctx, r); err != nil {
			_ = txn.Abort(ctx)
			return 0, fmt.Errorf("store %s: %w", r.Oid, err)
		}
	}
	if err := txn.Vote(ctx); err != nil {
		_ = txn.Abort(ctx)
		return 0, fmt.Errorf("vote: %w", err)
	}
	tid, err := txn.Finish(ctx)
	if err != nil {
		_ = txn.Abort(ctx)
		return 0, fmt.Errorf("finish: %w", err)
	}
	return tid, nil
}

// harness is one open storage of one subtest.
type harness struct {
	t   *testing.T
	f   Factory
	dir string
	st  storage.Storage
	ctx context.Context
}

func newHarness(t *testing.T, f Factory) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	h := &harness{t: t, f: f, dir: t.TempDir(), ctx: ctx}
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	st, err := h.f.Open(h.t, h.dir)
	if err != nil {
		h.t.Fatalf("open %s: %v", h.dir, err)
	}
	h.st = st
	h.t.Cleanup(func() { _ = st.Close() })
}

func (h *harness) reopen() {
	h.t.Helper()
	if err := h.st.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
	h.open()
}

func (h *harness) caps() storage.Capabilities { return h.st.Capabilities() }

func (h *harness) commit(recs ...storage.Record) storage.Tid {
	h.t.Helper()
	tid, err := Commit(h.ctx, h.st, storage.TxMeta{User: "storagetest", Description: h.t.Name()}, recs...)
	if err != nil {
		h.t.Fatalf("commit: %v", err)
	}
	return tid
}

func (h *harness) newOids(n int) []storage.Oid {
	h.t.Helper()
	oids, err := h.st.NewOids(h.ctx, n)
	if err != nil {
		h.t.Fatalf("new oids: %v", err)
	}
	if len(oids) != n {
		h.t.Fatalf("NewOids(%d) returned %d oids", n, len(oids))
	}
	return oids
}

func (h *harness) load(oid storage.Oid) storage.Record {
	h.t.Helper()
	rec, err := h.st.Load(h.ctx, oid)
	if err != nil {
		h.t.Fatalf("load %s: %v", oid, err)
	}
	return rec
}

func (h *harness) loadData(oid storage.Oid) string { return string(h.load(oid).Data) }

func (h *harness) wantNotFound(oid storage.Oid) {
	h.t.Helper()
	if rec, err := h.st.Load(h.ctx, oid); !errors.Is(err, storage.ErrNotFound) {
		h.t.Fatalf("load %s = %q, %v; want ErrNotFound", oid, rec.Data, err)
	}
}

func (h *harness) lastTid() storage.Tid {
	h.t.Helper()
	tid, err := h.st.LastTid(h.ctx)
	if err != nil {
		h.t.Fatalf("last tid: %v", err)
	}
	return tid
}

// tree creates n objects, each referenced by the root, and returns their
// oids and the tid that wrote them. The root's data is "root".
func (h *harness) tree(n int) ([]storage.Oid, storage.Tid) {
	h.t.Helper()
	oids := h.newOids(n)
	recs := []storage.Record{rootRecord(h.serialOf(storage.RootOid), oids)}
	for i, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: fmt.Appendf(nil, "obj %d v0", i)})
	}
	return oids, h.commit(recs...)
}

// serialOf returns the current serial of oid, ZeroTid if it does not exist.
func (h *harness) serialOf(oid storage.Oid) storage.Tid {
	h.t.Helper()
	rec, err := h.st.Load(h.ctx, oid)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ZeroTid
	}
	if err != nil {
		h.t.Fatalf("load %s: %v", oid, err)
	}
	return rec.Serial
}

func rootRecord(serial storage.Tid, refs []storage.Oid) storage.Record {
	return storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte("root"), Refs: refs}
}

// wantErr fails unless err matches one of targets.
func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("%s: got error %v, want one of %v", what, err, targets)
}

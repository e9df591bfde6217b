package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

func testBasicLoadStore(t *testing.T, f Factory) {
	h := newHarness(t, f)
	if got := h.lastTid(); got != storage.ZeroTid {
		t.Fatalf("LastTid of an empty storage = %s, want zero", got)
	}
	h.wantNotFound(storage.RootOid)
	oids := h.newOids(2)
	data := []byte("first object")
	tid := h.commit(
		rootRecord(0, oids),
		storage.Record{Oid: oids[0], Data: data, Refs: []storage.Oid{oids[1]}},
		storage.Record{Oid: oids[1], Data: []byte{}},
	)
	data[0] = 'X' // the storage must have copied it
	if tid == storage.ZeroTid {
		t.Fatal("Finish returned the zero tid")
	}
	if got := h.lastTid(); got != tid {
		t.Fatalf("LastTid = %s, want %s", got, tid)
	}
	rec := h.load(oids[0])
	if rec.Oid != oids[0] || rec.Serial != tid || string(rec.Data) != "first object" || !slices.Equal(rec.Refs, []storage.Oid{oids[1]}) {
		t.Fatalf("load = %+v, want oid %s serial %s data %q refs [%s]", rec, oids[0], tid, "first object", oids[1])
	}
	rec.Data[0] = 'Y' // nor may a caller change it through a loaded record
	if got := h.loadData(oids[0]); got != "first object" {
		t.Fatalf("data changed through a loaded record: %q", got)
	}
	if rec := h.load(oids[1]); rec.Data == nil || len(rec.Data) != 0 {
		t.Fatalf("empty data loaded as %#v, want non-nil empty", rec.Data)
	}
	if rec := h.load(storage.RootOid); !slices.Equal(sortedOids(rec.Refs), sortedOids(oids)) {
		t.Fatalf("root refs = %v, want %v", rec.Refs, oids)
	}
	// Overwrite based on the current serial.
	tid2 := h.commit(storage.Record{Oid: oids[0], Serial: tid, Data: []byte("second")})
	if tid2 <= tid {
		t.Fatalf("second tid %s not after first %s", tid2, tid)
	}
	if rec := h.load(oids[0]); rec.Serial != tid2 || string(rec.Data) != "second" || len(rec.Refs) != 0 {
		t.Fatalf("after overwrite load = %+v", rec)
	}
	if rec := h.load(oids[1]); rec.Serial != tid {
		t.Fatalf("untouched object serial = %s, want %s", rec.Serial, tid)
	}
	// Storing an oid twice in one transaction keeps the last.
	txn, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b", "c"} {
		if err := txn.Store(h.ctx, storage.Record{Oid: oids[1], Serial: tid, Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Vote(h.ctx); err != nil {
		t.Fatal(err)
	}
	tid3, err := txn.Finish(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec := h.load(oids[1]); string(rec.Data) != "c" || rec.Serial != tid3 {
		t.Fatalf("after storing three times load = %q at %s, want %q at %s", rec.Data, rec.Serial, "c", tid3)
	}
	h.wantNotFound(oids[1] + 1000)
}

func sortedOids(o []storage.Oid) []storage.Oid {
	o = slices.Clone(o)
	slices.Sort(o)
	return o
}

func testConflicts(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(4)
	tid2 := h.commit(
		storage.Record{Oid: oids[0], Serial: tid1, Data: []byte("a2")},
		storage.Record{Oid: oids[1], Serial: tid1, Data: []byte("b2")},
	)
	// Based on stale serials for 0 and 1, correct for 2, and "new" for an
	// object that exists (3): three conflicts in one vote.
	txn, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []storage.Record{
		{Oid: oids[0], Serial: tid1, Data: []byte("x")},
		{Oid: oids[1], Serial: tid1, Data: []byte("x")},
		{Oid: oids[2], Serial: tid1, Data: []byte("x")},
		{Oid: oids[3], Serial: storage.ZeroTid, Data: []byte("x")},
	} {
		if err := txn.Store(h.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	err = txn.Vote(h.ctx)
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("vote with stale serials: %v, want ErrConflict", err)
	}
	var ce *storage.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("vote error %v is not a *ConflictError", err)
	}
	want := sortedOids([]storage.Oid{oids[0], oids[1], oids[3]})
	if got := ce.Oids(); !slices.Equal(got, want) {
		t.Fatalf("conflict oids = %v, want %v (every conflict at once)", got, want)
	}
	for _, c := range ce.Conflicts {
		switch c.Oid {
		case oids[0], oids[1]:
			if c.Expected != tid1 || c.Actual != tid2 {
				t.Errorf("conflict %s: expected %s actual %s, want %s and %s", c.Oid, c.Expected, c.Actual, tid1, tid2)
			}
		case oids[3]:
			if c.Expected != storage.ZeroTid || c.Actual != tid1 {
				t.Errorf("conflict %s: expected %s actual %s, want zero and %s", c.Oid, c.Expected, c.Actual, tid1)
			}
		}
	}
	if _, err := txn.Finish(h.ctx); err == nil {
		t.Fatal("Finish after a failed vote succeeded")
	}
	if err := txn.Abort(h.ctx); err != nil {
		t.Fatalf("abort after failed vote: %v", err)
	}
	// Nothing of the failed transaction is visible, and the lock is free.
	if got := h.loadData(oids[2]); got != "obj 2 v0" {
		t.Fatalf("failed transaction left data: %q", got)
	}
	if got := h.lastTid(); got != tid2 {
		t.Fatalf("LastTid = %s after failed vote, want %s", got, tid2)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if _, err := Commit(ctx, h.st, storage.TxMeta{}, storage.Record{Oid: oids[2], Serial: tid1, Data: []byte("c2")}); err != nil {
		t.Fatalf("commit after a failed vote: %v", err)
	}
}

func testLoadBefore(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(1)
	o := oids[0]
	tid2 := h.commit(storage.Record{Oid: o, Serial: tid1, Data: []byte("v2")})
	// Before the creation: nothing.
	if _, _, err := h.st.LoadBefore(h.ctx, o, tid1); !errors.Is(err, storage.ErrNotFound) && !(errors.Is(err, storage.ErrNotSupported) && !h.caps().History) {
		t.Fatalf("LoadBefore(creation tid) = %v, want ErrNotFound", err)
	}
	// After the newest revision: every backend answers.
	rec, end, err := h.st.LoadBefore(h.ctx, o, tid2+1)
	if err != nil {
		t.Fatalf("LoadBefore(last+1): %v", err)
	}
	if rec.Serial != tid2 || string(rec.Data) != "v2" || end != storage.ZeroTid {
		t.Fatalf("LoadBefore(last+1) = %q at %s end %s, want v2 at %s end zero", rec.Data, rec.Serial, end, tid2)
	}
	rec, _, err = h.st.LoadBefore(h.ctx, storage.RootOid, tid2+1)
	if err != nil || rec.Serial != tid1 {
		t.Fatalf("LoadBefore(root, last+1) = %s, %v; want serial %s", rec.Serial, err, tid1)
	}
	// Between the two revisions: history or ErrNotSupported.
	rec, end, err = h.st.LoadBefore(h.ctx, o, tid2)
	if !h.caps().History {
		wantErr(t, "LoadBefore(tid of current revision) without history", err, storage.ErrNotSupported)
		return
	}
	if err != nil {
		t.Fatalf("LoadBefore(tid2): %v", err)
	}
	if rec.Serial != tid1 || string(rec.Data) != "obj 0 v0" || end != tid2 {
		t.Fatalf("LoadBefore(tid2) = %q at %s end %s, want %q at %s end %s", rec.Data, rec.Serial, end, "obj 0 v0", tid1, tid2)
	}
	if _, _, err := h.st.LoadBefore(h.ctx, o+100, tid2); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LoadBefore(unknown oid) = %v, want ErrNotFound", err)
	}
}

// testMVCCDuringCommits runs writers that keep two objects equal in every
// transaction, and readers that must never see them differ: through a
// snapshot (LoadBefore) on history backends, and through the last
// committed state on all.
func testMVCCDuringCommits(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid := h.tree(2)
	x, y := oids[0], oids[1]
	serial := h.commit(
		storage.Record{Oid: x, Serial: tid, Data: []byte("0")},
		storage.Record{Oid: y, Serial: tid, Data: []byte("0")})
	commits := 150
	if testing.Short() {
		commits = 40
	}
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 1; i <= commits; i++ {
			v := []byte(strconv.Itoa(i))
			tid, err := Commit(ctx, h.st, storage.TxMeta{},
				storage.Record{Oid: x, Serial: serial, Data: v},
				storage.Record{Oid: y, Serial: serial, Data: v})
			if err != nil {
				errs <- fmt.Errorf("writer commit %d: %w", i, err)
				return
			}
			serial = tid
		}
	}()
	reads := make([]int, 3)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ {
				select {
				case <-done:
					return
				default:
				}
				snap, err := h.st.LastTid(ctx)
				if err != nil {
					errs <- err
					return
				}
				a, _, errA := h.st.LoadBefore(ctx, x, snap+1)
				b, _, errB := h.st.LoadBefore(ctx, y, snap+1)
				if !h.caps().History && (errors.Is(errA, storage.ErrNotSupported) || errors.Is(errB, storage.ErrNotSupported)) {
					continue // a commit came in between; allowed without history
				}
				if errA != nil || errB != nil {
					errs <- fmt.Errorf("reader: LoadBefore(%s): %v / %v", snap+1, errA, errB)
					return
				}
				if !bytes.Equal(a.Data, b.Data) || a.Serial != b.Serial || a.Serial > snap {
					errs <- fmt.Errorf("reader: snapshot %s saw x=%q@%s y=%q@%s", snap, a.Data, a.Serial, b.Data, b.Serial)
					return
				}
				reads[r]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if got := h.loadData(x); got != strconv.Itoa(commits) {
		t.Fatalf("final x = %q, want %d", got, commits)
	}
	t.Logf("%d commits, snapshot reads per reader %v", commits, reads)
}

func testNewOidsUnique(t *testing.T, f Factory) {
	h := newHarness(t, f)
	workers, calls := 8, 40
	if testing.Short() {
		calls = 10
	}
	var mu sync.Mutex
	seen := map[storage.Oid]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range calls {
				n := 1 + (w*calls+c)%97
				oids, err := h.st.NewOids(h.ctx, n)
				if err != nil {
					errs <- err
					return
				}
				if len(oids) != n {
					errs <- fmt.Errorf("NewOids(%d) returned %d", n, len(oids))
					return
				}
				mu.Lock()
				for _, o := range oids {
					if o == storage.RootOid || seen[o] {
						errs <- fmt.Errorf("NewOids returned %s twice or the root", o)
						mu.Unlock()
						return
					}
					seen[o] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// An oid stored without being allocated is never handed out later.
	high := storage.Oid(1 << 40)
	h.commit(rootRecord(0, []storage.Oid{high}), storage.Record{Oid: high, Data: []byte("high")})
	for _, o := range h.newOids(100) {
		if o == high || seen[o] {
			t.Fatalf("NewOids returned %s, already used", o)
		}
		seen[o] = true
	}
	if !f.Persistent {
		return
	}
	// Oids stay used across a restart, even unused ones.
	h.reopen()
	for _, o := range h.newOids(1000) {
		if seen[o] || o == high || o == storage.RootOid {
			t.Fatalf("after reopen NewOids returned %s, handed out before", o)
		}
	}
}

func testAbortLeavesNoTrace(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid := h.tree(1)
	fresh := h.newOids(1)[0]
	for _, voted := range []bool{false, true} {
		txn, err := h.st.Begin(h.ctx, storage.TxMeta{User: "aborter"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []storage.Record{
			{Oid: oids[0], Serial: tid, Data: []byte("aborted")},
			{Oid: fresh, Data: []byte("aborted new")},
			rootRecord(tid, []storage.Oid{oids[0], fresh}),
		} {
			if err := txn.Store(h.ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if voted {
			if err := txn.Vote(h.ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := txn.Abort(h.ctx); err != nil {
			t.Fatalf("abort (voted %v): %v", voted, err)
		}
		if got := h.loadData(oids[0]); got != "obj 0 v0" {
			t.Fatalf("aborted change visible: %q", got)
		}
		h.wantNotFound(fresh)
		if got := h.lastTid(); got != tid {
			t.Fatalf("LastTid %s after abort, want %s", got, tid)
		}
		if err := txn.Store(h.ctx, storage.Record{Oid: fresh, Data: []byte("x")}); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("store after abort: %v, want ErrClosed", err)
		}
		if err := txn.Vote(h.ctx); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("vote after abort: %v, want ErrClosed", err)
		}
		if _, err := txn.Finish(h.ctx); !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("finish after abort: %v, want ErrClosed", err)
		}
		if err := txn.Abort(h.ctx); err != nil {
			t.Fatalf("second abort: %v, want nil", err)
		}
	}
	// The lock an aborted vote held is free: a commit goes through at once.
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if _, err := Commit(ctx, h.st, storage.TxMeta{}, storage.Record{Oid: oids[0], Serial: tid, Data: []byte("after")}); err != nil {
		t.Fatalf("commit after aborted vote: %v", err)
	}
	if h.caps().History {
		n := 0
		for tx, err := range h.st.Iterate(h.ctx, 0, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if tx.User == "aborter" {
				t.Fatalf("aborted transaction iterated: %+v", tx.TxInfo)
			}
			n++
		}
		if n != 2 {
			t.Fatalf("iterated %d transactions, want 2", n)
		}
	}
	if f.Persistent {
		h.reopen()
		h.wantNotFound(fresh)
		if got := h.loadData(oids[0]); got != "after" {
			t.Fatalf("after reopen: %q", got)
		}
	}
}

func testDurability(t *testing.T, f Factory) {
	if !f.Persistent {
		t.Skip("backend is not persistent")
	}
	h := newHarness(t, f)
	oids, tid := h.tree(10)
	want := map[storage.Oid]storage.Record{}
	serial := map[storage.Oid]storage.Tid{}
	for _, o := range oids {
		serial[o] = tid
	}
	for i := range 20 {
		o := oids[i%len(oids)]
		d := fmt.Appendf(nil, "rev %d", i)
		refs := []storage.Oid{oids[(i+1)%len(oids)]}
		tid := h.commit(storage.Record{Oid: o, Serial: serial[o], Data: d, Refs: refs})
		serial[o] = tid
		want[o] = storage.Record{Oid: o, Serial: tid, Data: d, Refs: refs}
	}
	last := h.lastTid()
	for round := range 2 {
		h.reopen()
		if got := h.lastTid(); got != last {
			t.Fatalf("reopen %d: LastTid %s, want %s", round, got, last)
		}
		for o, w := range want {
			got := h.load(o)
			if got.Serial != w.Serial || !bytes.Equal(got.Data, w.Data) || !slices.Equal(got.Refs, w.Refs) {
				t.Fatalf("reopen %d: %s = %+v, want %+v", round, o, got, w)
			}
		}
		if got := h.loadData(storage.RootOid); got != "root" {
			t.Fatalf("reopen %d: root %q", round, got)
		}
	}
}

func testHistory(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(1)
	o := oids[0]
	if !h.caps().History {
		_, err := h.st.History(h.ctx, o, 10)
		wantErr(t, "History without the capability", err, storage.ErrNotSupported)
		return
	}
	tids := []storage.Tid{tid1}
	for i := 1; i <= 3; i++ {
		tid, err := Commit(h.ctx, h.st, storage.TxMeta{User: "u" + strconv.Itoa(i), Description: "d" + strconv.Itoa(i)},
			storage.Record{Oid: o, Serial: tids[len(tids)-1], Data: bytes.Repeat([]byte("x"), i*10)})
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	revs, err := h.st.History(h.ctx, o, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 4 {
		t.Fatalf("History = %d revisions, want 4", len(revs))
	}
	for i, r := range revs {
		wantTid := tids[len(tids)-1-i]
		if r.Serial != wantTid {
			t.Fatalf("revision %d serial %s, want %s (newest first)", i, r.Serial, wantTid)
		}
		if n := 3 - i; n > 0 && (r.Size != n*10 || r.User != "u"+strconv.Itoa(n) || r.Description != "d"+strconv.Itoa(n)) {
			t.Fatalf("revision %d = %+v, want size %d user u%d", i, r, n*10, n)
		}
	}
	revs, err = h.st.History(h.ctx, o, 2)
	if err != nil || len(revs) != 2 || revs[0].Serial != tids[3] {
		t.Fatalf("History(max 2) = %v, %v", revs, err)
	}
	if _, err := h.st.History(h.ctx, o+1000, 10); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("History(unknown) = %v, want ErrNotFound", err)
	}
	// Every revision is loadable as of its time.
	for i, tid := range tids {
		rec, end, err := h.st.LoadBefore(h.ctx, o, tid+1)
		if err != nil || rec.Serial != tid {
			t.Fatalf("LoadBefore(%s) = %s, %v", tid+1, rec.Serial, err)
		}
		wantEnd := storage.ZeroTid
		if i+1 < len(tids) {
			wantEnd = tids[i+1]
		}
		if end != wantEnd {
			t.Fatalf("LoadBefore(%s) end %s, want %s", tid+1, end, wantEnd)
		}
	}
	if f.Persistent {
		h.reopen()
		revs, err := h.st.History(h.ctx, o, 0)
		if err != nil || len(revs) < 4 {
			t.Fatalf("after reopen History = %d revisions, %v", len(revs), err)
		}
	}
}

func testUndo(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(2)
	a, b := oids[0], oids[1]
	tid2 := h.commit(storage.Record{Oid: a, Serial: tid1, Data: []byte("a2")})
	if !h.caps().Undo {
		_, err := h.st.UndoLog(h.ctx, 10)
		wantErr(t, "UndoLog without the capability", err, storage.ErrNotSupported)
		_, _, err = h.st.Undo(h.ctx, tid2, storage.TxMeta{})
		wantErr(t, "Undo without the capability", err, storage.ErrNotSupported)
		return
	}
	log, err := h.st.UndoLog(h.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Tid != tid2 || log[1].Tid != tid1 || !slices.Equal(log[0].Oids, []storage.Oid{a}) {
		t.Fatalf("UndoLog = %+v, want [%s %s] newest first", log, tid2, tid1)
	}
	if log, err := h.st.UndoLog(h.ctx, 1); err != nil || len(log) != 1 {
		t.Fatalf("UndoLog(1) = %v, %v", log, err)
	}
	// Undo a change: the previous revision comes back as a new one.
	utid, changed, err := h.st.Undo(h.ctx, tid2, storage.TxMeta{User: "undoer"})
	if err != nil {
		t.Fatal(err)
	}
	if utid <= tid2 || !slices.Equal(changed, []storage.Oid{a}) {
		t.Fatalf("Undo = %s %v, want a tid after %s and [%s]", utid, changed, tid2, a)
	}
	if rec := h.load(a); string(rec.Data) != "obj 0 v0" || rec.Serial != utid {
		t.Fatalf("after undo a = %q at %s, want obj 0 v0 at %s", rec.Data, rec.Serial, utid)
	}
	if got := h.lastTid(); got != utid {
		t.Fatalf("LastTid %s after undo, want %s", got, utid)
	}
	// Undo conflicts when a later transaction changed the object.
	tid4 := h.commit(storage.Record{Oid: b, Serial: tid1, Data: []byte("b4")})
	h.commit(storage.Record{Oid: b, Serial: tid4, Data: []byte("b5")})
	if _, _, err := h.st.Undo(h.ctx, tid4, storage.TxMeta{}); !errors.Is(err, storage.ErrUndoConflict) {
		t.Fatalf("undo of an overwritten change: %v, want ErrUndoConflict", err)
	}
	// Undo a creation: the object is gone.
	c := h.newOids(1)[0]
	rootSerial := h.serialOf(storage.RootOid)
	tid6 := h.commit(rootRecord(rootSerial, []storage.Oid{a, b, c}), storage.Record{Oid: c, Data: []byte("c")})
	if _, changed, err := h.st.Undo(h.ctx, tid6, storage.TxMeta{}); err != nil || len(changed) != 2 {
		t.Fatalf("undo of a creation = %v, %v", changed, err)
	}
	h.wantNotFound(c)
	if rec := h.load(storage.RootOid); len(rec.Refs) != 2 {
		t.Fatalf("root refs after undo = %v, want 2", rec.Refs)
	}
	if _, _, err := h.st.Undo(h.ctx, 12345, storage.TxMeta{}); !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("undo of an unknown tid: %v, want ErrNotFound or ErrInvalid", err)
	}
	if f.Persistent {
		h.reopen()
		h.wantNotFound(c)
		if got := h.loadData(a); got != "obj 0 v0" {
			t.Fatalf("after reopen a = %q", got)
		}
	}
}

func testPack(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(3)
	a, b, c := oids[0], oids[1], oids[2]
	if !h.caps().Pack {
		err := h.st.Pack(h.ctx, tid1+1, nil)
		wantErr(t, "Pack without the capability", err, storage.ErrNotSupported)
		return
	}
	// b references c; the root drops b: b and c become unreachable.
	tid2 := h.commit(storage.Record{Oid: b, Serial: tid1, Data: []byte("b2"), Refs: []storage.Oid{c}})
	tid3 := h.commit(storage.Record{Oid: a, Serial: tid1, Data: []byte("a3")})
	tid4 := h.commit(rootRecord(tid1, []storage.Oid{a}))
	tid5 := h.commit(storage.Record{Oid: a, Serial: tid3, Data: []byte("a5")})
	_ = tid2
	if err := h.st.Pack(h.ctx, storage.Tid(^uint64(0)>>1), nil); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("pack to the far future: %v, want ErrInvalid", err)
	}
	var calls int
	var last [2]int64
	if err := h.st.Pack(h.ctx, tid4+1, func(done, total int64) { calls++; last = [2]int64{done, total} }); err != nil {
		t.Fatalf("pack: %v", err)
	}
	if calls > 0 && last[0] > last[1] {
		t.Fatalf("progress reported done %d > total %d", last[0], last[1])
	}
	h.wantNotFound(b)
	h.wantNotFound(c)
	if rec := h.load(a); string(rec.Data) != "a5" || rec.Serial != tid5 {
		t.Fatalf("after pack a = %q at %s", rec.Data, rec.Serial)
	}
	// The revision current at the pack time stays for readers at it.
	rec, end, err := h.st.LoadBefore(h.ctx, a, tid4+1)
	if err != nil || string(rec.Data) != "a3" || end != tid5 {
		t.Fatalf("LoadBefore(pack tid) = %q end %s, %v; want a3 end %s", rec.Data, end, err, tid5)
	}
	// Older revisions are gone.
	if _, _, err := h.st.LoadBefore(h.ctx, a, tid3); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("LoadBefore(before pack) = %v, want ErrNotFound", err)
	}
	if h.caps().History {
		revs, err := h.st.History(h.ctx, a, 0)
		if err != nil || len(revs) != 2 {
			t.Fatalf("History after pack = %d revisions, %v; want 2", len(revs), err)
		}
	}
	// Commits keep working, and a second pack is harmless.
	tid6 := h.commit(storage.Record{Oid: a, Serial: tid5, Data: []byte("a6")})
	if err := h.st.Pack(h.ctx, tid6+1, nil); err != nil {
		t.Fatalf("second pack: %v", err)
	}
	if got := h.loadData(a); got != "a6" {
		t.Fatalf("after second pack a = %q", got)
	}
	if f.Persistent {
		h.reopen()
		h.wantNotFound(b)
		if got := h.loadData(a); got != "a6" {
			t.Fatalf("after reopen a = %q", got)
		}
	}
}

func testIterate(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid1 := h.tree(3)
	tid2, err := Commit(h.ctx, h.st, storage.TxMeta{User: "it", Description: "second", Extension: map[string]string{"node": "n1"}},
		storage.Record{Oid: oids[0], Serial: tid1, Data: []byte("a2"), Refs: []storage.Oid{oids[1]}},
		storage.Record{Oid: oids[2], Serial: tid1, Data: []byte("c2")})
	if err != nil {
		t.Fatal(err)
	}
	tid3 := h.commit(storage.Record{Oid: oids[0], Serial: tid2, Data: []byte("a3")})
	var got []storage.TxRecords
	for tx, err := range h.st.Iterate(h.ctx, 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tx)
	}
	if !h.caps().History {
		// The current state, one synthetic transaction per serial.
		current := map[storage.Oid]storage.Record{}
		var prev storage.Tid
		for _, tx := range got {
			if tx.Tid <= prev {
				t.Fatalf("iterated tids not increasing: %s after %s", tx.Tid, prev)
			}
			prev = tx.Tid
			for _, r := range tx.Records {
				if r.Serial != tx.Tid {
					t.Fatalf("record %s serial %s in transaction %s", r.Oid, r.Serial, tx.Tid)
				}
				if _, dup := current[r.Oid]; dup {
					t.Fatalf("record %s iterated twice", r.Oid)
				}
				current[r.Oid] = r
			}
		}
		if len(current) != 4 {
			t.Fatalf("iterated %d objects, want 4", len(current))
		}
		for o, r := range current {
			l := h.load(o)
			if l.Serial != r.Serial || !bytes.Equal(l.Data, r.Data) || !slices.Equal(l.Refs, r.Refs) {
				t.Fatalf("iterated %s = %+v, load = %+v", o, r, l)
			}
		}
		return
	}
	if len(got) != 3 || got[0].Tid != tid1 || got[1].Tid != tid2 || got[2].Tid != tid3 {
		t.Fatalf("iterated %d transactions, want %s %s %s", len(got), tid1, tid2, tid3)
	}
	tx := got[1]
	if tx.User != "it" || tx.Description != "second" || tx.Extension["node"] != "n1" {
		t.Fatalf("transaction meta = %+v", tx.TxMeta)
	}
	if !slices.Equal(tx.Oids, []storage.Oid{oids[0], oids[2]}) || len(tx.Records) != 2 {
		t.Fatalf("transaction oids = %v with %d records", tx.Oids, len(tx.Records))
	}
	for _, r := range tx.Records {
		if r.Serial != tid2 {
			t.Fatalf("record serial %s, want %s", r.Serial, tid2)
		}
		if r.Oid == oids[0] && (string(r.Data) != "a2" || !slices.Equal(r.Refs, []storage.Oid{oids[1]})) {
			t.Fatalf("record = %+v", r)
		}
	}
	// Bounds: start inclusive, stop exclusive; break stops early.
	var tids []storage.Tid
	for tx, err := range h.st.Iterate(h.ctx, tid2, tid3) {
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tx.Tid)
	}
	if !slices.Equal(tids, []storage.Tid{tid2}) {
		t.Fatalf("Iterate(%s, %s) = %v", tid2, tid3, tids)
	}
	n := 0
	for _, err := range h.st.Iterate(h.ctx, 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("break did not stop the iteration")
	}
	if f.Persistent {
		h.reopen()
		n := 0
		for _, err := range h.st.Iterate(h.ctx, tid1, 0) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 3 {
			t.Fatalf("after reopen iterated %d transactions, want 3", n)
		}
	}
}

func testLargeRecords(t *testing.T, f Factory) {
	h := newHarness(t, f)
	size := f.MaxRecordSize
	if size <= 0 {
		size = DefaultMaxRecordSize
	}
	big := make([]byte, size)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	oids := h.newOids(2)
	tid := h.commit(rootRecord(0, oids), storage.Record{Oid: oids[0], Data: big}, storage.Record{Oid: oids[1], Data: []byte("small")})
	if rec := h.load(oids[0]); !bytes.Equal(rec.Data, big) || rec.Serial != tid {
		t.Fatalf("large record (%d bytes) came back as %d bytes", len(big), len(rec.Data))
	}
	big[0]++
	tid2 := h.commit(storage.Record{Oid: oids[0], Serial: tid, Data: big})
	if f.Persistent {
		h.reopen()
	}
	if rec := h.load(oids[0]); !bytes.Equal(rec.Data, big) || rec.Serial != tid2 {
		t.Fatalf("overwritten large record differs (%d bytes at %s)", len(rec.Data), rec.Serial)
	}
	if got := h.loadData(oids[1]); got != "small" {
		t.Fatalf("small record beside a large one = %q", got)
	}
}

func testManySmallTransactions(t *testing.T, f Factory) {
	h := newHarness(t, f)
	n := 1000
	if testing.Short() {
		n = 200
	}
	oids, tid := h.tree(50)
	serial := map[storage.Oid]storage.Tid{}
	for _, o := range oids {
		serial[o] = tid
	}
	last := tid
	for i := range n {
		o := oids[i%len(oids)]
		tid := h.commit(storage.Record{Oid: o, Serial: serial[o], Data: fmt.Appendf(nil, "%d", i)})
		if tid <= last {
			t.Fatalf("commit %d: tid %s not after %s", i, tid, last)
		}
		serial[o], last = tid, tid
	}
	check := func() {
		t.Helper()
		for i, o := range oids {
			want := (n-1)/len(oids)*len(oids) + i
			if want >= n {
				want -= len(oids)
			}
			if rec := h.load(o); string(rec.Data) != strconv.Itoa(want) || rec.Serial != serial[o] {
				t.Fatalf("%s = %q at %s, want %d at %s", o, rec.Data, rec.Serial, want, serial[o])
			}
		}
		if got := h.lastTid(); got != last {
			t.Fatalf("LastTid = %s, want %s", got, last)
		}
	}
	check()
	if f.Persistent {
		h.reopen()
		check()
	}
}

func testConcurrentReadersDuringPack(t *testing.T, f Factory) {
	h := newHarness(t, f)
	if !h.caps().Pack {
		t.Skip("backend does not pack")
	}
	objects, revs := 200, 10
	if testing.Short() {
		objects, revs = 50, 4
	}
	oids, tid := h.tree(objects)
	serial := map[storage.Oid]storage.Tid{}
	for _, o := range oids {
		serial[o] = tid
	}
	// History to pack away, and an unreachable object to collect.
	garbage := h.newOids(1)[0]
	for r := 1; r <= revs; r++ {
		recs := make([]storage.Record, 0, len(oids))
		for i, o := range oids {
			recs = append(recs, storage.Record{Oid: o, Serial: serial[o], Data: fmt.Appendf(nil, "obj %d v%d", i, r)})
		}
		if r == 1 {
			recs = append(recs, storage.Record{Oid: garbage, Data: []byte("garbage")}, rootRecord(tid, append(slices.Clone(oids), garbage)))
		}
		if r == 2 {
			recs = append(recs, rootRecord(h.serialOf(storage.RootOid), oids))
		}
		tid := h.commit(recs...)
		for _, o := range oids {
			serial[o] = tid
		}
	}
	packTid := h.lastTid() + 1
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 1_000_000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				o := oids[(n*7+r)%len(oids)]
				rec, err := h.st.Load(ctx, o)
				if err != nil {
					errs <- fmt.Errorf("load %s during pack: %w", o, err)
					return
				}
				if !bytes.HasPrefix(rec.Data, []byte("obj ")) {
					errs <- fmt.Errorf("load %s during pack: data %q", o, rec.Data)
					return
				}
			}
		}()
	}
	// A committer goes on while pack runs.
	wg.Add(1)
	var committed int
	go func() {
		defer wg.Done()
		o := oids[0]
		s := serial[o]
		for i := 0; i < 10_000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tid, err := Commit(ctx, h.st, storage.TxMeta{}, storage.Record{Oid: o, Serial: s, Data: fmt.Appendf(nil, "obj 0 during %d", i)})
			if err != nil {
				errs <- fmt.Errorf("commit during pack: %w", err)
				return
			}
			s = tid
			committed++
		}
	}()
	err := h.st.Pack(ctx, packTid, nil)
	close(stop)
	wg.Wait()
	close(errs)
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	for err := range errs {
		t.Error(err)
	}
	h.wantNotFound(garbage)
	for i, o := range oids[1:] {
		if got, want := h.loadData(o), fmt.Sprintf("obj %d v%d", i+1, revs); got != want {
			t.Fatalf("after pack %s = %q, want %q", o, got, want)
		}
	}
	t.Logf("%d commits went through during pack", committed)
}

// testCrashRecovery commits transactions that each change the root, one
// shared object and one new object, damages the closed storage, and checks
// that what reopens is exactly a prefix of what was committed.
func testCrashRecovery(t *testing.T, f Factory) {
	if !f.Persistent || f.Crash == nil {
		t.Skip("backend is not persistent or has no Crash hook")
	}
	for _, mode := range CrashModes {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHarness(t, f)
			n := 40
			if testing.Short() {
				n = 15
			}
			shared := h.newOids(1)[0]
			var created []storage.Oid
			var rootSerial, sharedSerial storage.Tid
			var tids []storage.Tid
			pad := bytes.Repeat([]byte("p"), 700)
			for i := 1; i <= n; i++ {
				y := h.newOids(1)[0]
				created = append(created, y)
				v := strconv.Itoa(i)
				tid := h.commit(
					storage.Record{Oid: storage.RootOid, Serial: rootSerial, Data: []byte(v), Refs: append([]storage.Oid{shared}, created...)},
					storage.Record{Oid: shared, Serial: sharedSerial, Data: append([]byte(v+" "), pad...)},
					storage.Record{Oid: y, Data: append([]byte(v+" "), pad...)},
				)
				rootSerial, sharedSerial = tid, tid
				tids = append(tids, tid)
			}
			if err := h.st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Crash(h.dir, mode); err != nil {
				t.Fatalf("crash %s: %v", mode, err)
			}
			h.open()
			// Which prefix survived?
			v := 0
			root, err := h.st.Load(h.ctx, storage.RootOid)
			switch {
			case errors.Is(err, storage.ErrNotFound):
			case err != nil:
				t.Fatalf("load root after crash: %v", err)
			default:
				v, err = strconv.Atoi(string(root.Data))
				if err != nil || v < 1 || v > n {
					t.Fatalf("root after crash = %q", root.Data)
				}
				if root.Serial != tids[v-1] {
					t.Fatalf("root at version %d has serial %s, want %s", v, root.Serial, tids[v-1])
				}
			}
			t.Logf("crash %s: %d of %d transactions survived", mode, v, n)
			if v == 0 {
				h.wantNotFound(shared)
			} else if rec := h.load(shared); !bytes.HasPrefix(rec.Data, []byte(strconv.Itoa(v)+" ")) || rec.Serial != tids[v-1] {
				t.Fatalf("shared object after crash at version %q, root at %d: a transaction was torn", bytes.Fields(rec.Data)[0], v)
			}
			for i, y := range created {
				if i < v {
					if got := h.loadData(y); !bytes.HasPrefix([]byte(got), []byte(strconv.Itoa(i+1)+" ")) {
						t.Fatalf("object of transaction %d lost while root is at %d", i+1, v)
					}
				} else {
					h.wantNotFound(y)
				}
			}
			last := h.lastTid()
			if v > 0 && last < tids[v-1] {
				t.Fatalf("LastTid %s before the surviving transaction %s", last, tids[v-1])
			}
			// The recovered storage takes commits and keeps them.
			fresh := h.newOids(1)[0]
			if v > 0 && fresh <= created[v-1] {
				t.Fatalf("NewOids after recovery returned %s, not after surviving %s", fresh, created[v-1])
			}
			tid := h.commit(
				storage.Record{Oid: storage.RootOid, Serial: h.serialOf(storage.RootOid), Data: []byte("after"), Refs: []storage.Oid{fresh}},
				storage.Record{Oid: fresh, Data: []byte("fresh")},
			)
			if tid <= last {
				t.Fatalf("tid after recovery %s not after LastTid %s", tid, last)
			}
			h.reopen()
			if got := h.loadData(fresh); got != "fresh" {
				t.Fatalf("commit after recovery lost on reopen: %q", got)
			}
		})
	}
}

func testCommitLockWaits(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid := h.tree(3)
	first, err := h.st.Begin(h.ctx, storage.TxMeta{User: "first"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Abort(context.Background()) })
	if err := first.Store(h.ctx, storage.Record{Oid: oids[0], Serial: tid, Data: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if err := first.Vote(h.ctx); err != nil {
		t.Fatal(err)
	}
	// A second committer waits for the lock until its ctx ends.
	second, err := h.st.Begin(h.ctx, storage.TxMeta{User: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Store(h.ctx, storage.Record{Oid: oids[1], Serial: tid, Data: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	const wait = 150 * time.Millisecond
	ctx, cancel := context.WithTimeout(h.ctx, wait)
	start := time.Now()
	err = second.Vote(ctx)
	waited := time.Since(start)
	cancel()
	if !errors.Is(err, storage.ErrCommitLockTimeout) {
		t.Fatalf("vote while locked: %v, want ErrCommitLockTimeout", err)
	}
	if waited < wait/2 {
		t.Fatalf("vote gave up after %v; it must wait until its ctx ends (%v)", waited, wait)
	}
	if err := second.Abort(h.ctx); err != nil {
		t.Fatal(err)
	}
	// A third committer waits and gets the lock once the first finishes.
	third, err := h.st.Begin(h.ctx, storage.TxMeta{User: "third"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = third.Abort(context.Background()) })
	if err := third.Store(h.ctx, storage.Record{Oid: oids[2], Serial: tid, Data: []byte("third")}); err != nil {
		t.Fatal(err)
	}
	var finishing atomic.Bool
	voted := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		defer cancel()
		err := third.Vote(ctx)
		if err == nil && !finishing.Load() {
			err = errors.New("third vote took the lock while the first held it")
		}
		voted <- err
	}()
	time.Sleep(50 * time.Millisecond)
	finishing.Store(true) // the lock is released only inside Finish
	tidFirst, err := first.Finish(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-voted:
		if err != nil {
			t.Fatalf("third vote: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("third vote never got the lock")
	}
	tidThird, err := third.Finish(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tidThird <= tidFirst {
		t.Fatalf("third tid %s not after first %s", tidThird, tidFirst)
	}
	if got := h.loadData(oids[1]); got != "obj 1 v0" {
		t.Fatalf("timed-out vote left data: %q", got)
	}
}

func testTidsIncrease(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, last := h.tree(1)
	before := storage.TidAt(time.Now().Add(-time.Hour))
	if last < before {
		t.Fatalf("tid %s (%v) is not derived from the wall clock", last, last.Time())
	}
	serial := last
	for round := range 3 {
		for range 20 {
			tid := h.commit(storage.Record{Oid: oids[0], Serial: serial, Data: []byte("x")})
			if tid <= last {
				t.Fatalf("tid %s not after %s", tid, last)
			}
			serial, last = tid, tid
		}
		if !f.Persistent || round == 2 {
			continue
		}
		h.reopen()
		if got := h.lastTid(); got != last {
			t.Fatalf("LastTid after reopen %s, want %s", got, last)
		}
	}
}

func testOddInput(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid := h.tree(1)
	for _, n := range []int{0, -1, 65537} {
		if _, err := h.st.NewOids(h.ctx, n); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("NewOids(%d) = %v, want ErrInvalid", n, err)
		}
	}
	if got, err := h.st.NewOids(h.ctx, 65536); err != nil || len(got) != 65536 {
		t.Fatalf("NewOids(65536) = %d oids, %v", len(got), err)
	}
	h.wantNotFound(storage.Oid(^uint64(0)))
	if _, _, err := h.st.LoadBefore(h.ctx, storage.Oid(^uint64(0)), storage.ZeroTid); err == nil {
		t.Fatal("LoadBefore(unknown, zero tid) succeeded")
	}
	if _, _, err := h.st.LoadBefore(h.ctx, oids[0], storage.ZeroTid); err == nil {
		t.Fatal("LoadBefore(zero tid) succeeded")
	}
	txn, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(h.ctx, storage.Record{Oid: oids[0], Serial: tid}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("Store(nil data) = %v, want ErrInvalid", err)
	}
	if _, err := txn.Finish(h.ctx); err == nil {
		t.Fatal("Finish before Vote succeeded")
	}
	if err := txn.Abort(h.ctx); err != nil {
		t.Fatal(err)
	}
	// An empty transaction commits or is refused, but never breaks the
	// storage.
	if tid2, err := Commit(h.ctx, h.st, storage.TxMeta{}); err == nil && tid2 <= tid {
		t.Fatalf("empty transaction tid %s not after %s", tid2, tid)
	}
	txn, err = h.st.Begin(h.ctx, storage.TxMeta{Extension: map[string]string{"": ""}})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(h.ctx, storage.Record{Oid: oids[0], Serial: h.serialOf(oids[0]), Data: []byte("y"), Refs: []storage.Oid{oids[0], oids[0], storage.RootOid}}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(h.ctx); err == nil {
		t.Fatal("second Vote succeeded")
	}
	tid3, err := txn.Finish(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(h.ctx, storage.Record{Oid: oids[0], Data: []byte("z")}); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Store after Finish = %v, want ErrClosed", err)
	}
	if _, err := txn.Finish(h.ctx); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Finish twice = %v, want ErrClosed", err)
	}
	if err := txn.Abort(h.ctx); err != nil {
		t.Fatalf("Abort after Finish = %v, want nil", err)
	}
	if rec := h.load(oids[0]); rec.Serial != tid3 || string(rec.Data) != "y" {
		t.Fatalf("load = %q at %s", rec.Data, rec.Serial)
	}
	// Canceled contexts fail cleanly.
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if _, err := h.st.Load(ctx, oids[0]); err == nil {
		t.Log("Load with a canceled context succeeded (allowed)")
	}
	txn, err = h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Store(h.ctx, storage.Record{Oid: oids[0], Serial: tid3, Data: []byte("q")}); err != nil {
		t.Fatal(err)
	}
	if err := txn.Vote(ctx); err == nil {
		t.Fatal("Vote with a canceled context succeeded")
	}
	_ = txn.Abort(h.ctx)
	if got := h.loadData(oids[0]); got != "y" {
		t.Fatalf("canceled vote changed data: %q", got)
	}
}

func testAfterClose(t *testing.T, f Factory) {
	h := newHarness(t, f)
	oids, tid := h.tree(1)
	open, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := open.Store(h.ctx, storage.Record{Oid: oids[0], Serial: tid, Data: []byte("never")}); err != nil {
		t.Fatal(err)
	}
	voted, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := voted.Store(h.ctx, storage.Record{Oid: oids[0], Serial: tid, Data: []byte("never")}); err != nil {
		t.Fatal(err)
	}
	if err := voted.Vote(h.ctx); err != nil {
		t.Fatal(err)
	}
	// A committer waiting for the lock is released by Close.
	waiting, err := h.st.Begin(h.ctx, storage.TxMeta{})
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		defer cancel()
		waitErr <- waiting.Vote(ctx)
	}()
	time.Sleep(20 * time.Millisecond)
	if err := h.st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := h.st.Close(); err != nil {
		t.Fatalf("second close: %v, want nil", err)
	}
	select {
	case err := <-waitErr:
		if err == nil {
			t.Fatal("vote waiting for the lock succeeded after Close")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close left a vote waiting for the lock")
	}
	ctx := h.ctx
	closed := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" after Close", err, storage.ErrClosed)
	}
	closedOrUnsupported := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" after Close", err, storage.ErrClosed, storage.ErrNotSupported)
	}
	_, err = h.st.Load(ctx, oids[0])
	closed("Load", err)
	_, _, err = h.st.LoadBefore(ctx, oids[0], tid+1)
	closed("LoadBefore", err)
	_, err = h.st.NewOids(ctx, 1)
	closed("NewOids", err)
	_, err = h.st.Begin(ctx, storage.TxMeta{})
	closed("Begin", err)
	_, err = h.st.LastTid(ctx)
	closed("LastTid", err)
	_, err = h.st.History(ctx, oids[0], 1)
	closedOrUnsupported("History", err)
	_, err = h.st.UndoLog(ctx, 1)
	closedOrUnsupported("UndoLog", err)
	_, _, err = h.st.Undo(ctx, tid, storage.TxMeta{})
	closedOrUnsupported("Undo", err)
	closedOrUnsupported("Pack", h.st.Pack(ctx, tid+1, nil))
	for _, err := range h.st.Iterate(ctx, 0, 0) {
		closedOrUnsupported("Iterate", err)
		break
	}
	closed("Store on an open transaction", open.Store(ctx, storage.Record{Oid: oids[0], Data: []byte("x")}))
	_, err = voted.Finish(ctx)
	closed("Finish of a voted transaction", err)
	for _, txn := range []storage.Txn{open, voted, waiting} {
		if err := txn.Abort(ctx); err != nil {
			t.Fatalf("Abort after Close = %v, want nil", err)
		}
	}
	if f.Persistent {
		h.open()
		if got := h.loadData(oids[0]); got != "obj 0 v0" {
			t.Fatalf("transaction open at Close committed: %q", got)
		}
	}
}

func testGarbageCollection(t *testing.T, f Factory) {
	if !f.CollectsGarbage {
		t.Skip("backend does not collect garbage continuously")
	}
	h := newHarness(t, f)
	oids, tid := h.tree(2)
	a, b := oids[0], oids[1]
	// b gets a child chain b -> c -> d; a shares d.
	cd := h.newOids(2)
	c, d := cd[0], cd[1]
	tid2 := h.commit(
		storage.Record{Oid: b, Serial: tid, Data: []byte("b"), Refs: []storage.Oid{c}},
		storage.Record{Oid: c, Data: []byte("c"), Refs: []storage.Oid{d}},
		storage.Record{Oid: d, Data: []byte("d")},
		storage.Record{Oid: a, Serial: tid, Data: []byte("a"), Refs: []storage.Oid{d}},
	)
	// Unlink b: b and c go, d stays (a references it).
	h.commit(rootRecord(tid, []storage.Oid{a}))
	h.wantNotFound(b)
	h.wantNotFound(c)
	if got := h.loadData(d); got != "d" {
		t.Fatalf("shared object collected: %q", got)
	}
	// Drop a's reference: d goes too.
	h.commit(storage.Record{Oid: a, Serial: tid2, Data: []byte("a2")})
	h.wantNotFound(d)
	if f.Persistent {
		h.reopen()
		h.wantNotFound(b)
		h.wantNotFound(d)
		if got := h.loadData(a); got != "a2" {
			t.Fatalf("after reopen a = %q", got)
		}
	}
}

package db_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// twoNodes opens two DBs over one storage: two application nodes.
func twoNodes(t *testing.T, st storage.Storage) [2]*db.DB {
	opts := db.Options{MaxAttempts: 50}
	return [2]*db.DB{openDB(t, st, opts), openDB(t, st, opts)}
}

// tidTracker remembers the newest tid an Update returned, so the final
// check can wait until both nodes have seen it.
type tidTracker struct {
	mu   sync.Mutex
	last storage.Tid
}

func (tt *tidTracker) add(tid storage.Tid) {
	tt.mu.Lock()
	tt.last = max(tt.last, tid)
	tt.mu.Unlock()
}

// sync waits until every node sees the newest commit of partition.
func (tt *tidTracker) sync(t *testing.T, nodes [2]*db.DB, partition string) {
	t.Helper()
	for _, d := range nodes {
		if err := d.WaitForTid(testCtx(t), partition, tt.last); err != nil {
			t.Fatal(err)
		}
	}
}

// partitionOf returns the partition holding the object at path.
func partitionOf(t *testing.T, d *db.DB, path string) string {
	t.Helper()
	var p string
	if err := d.View(testCtx(t), func(tx *db.Tx) error {
		obj, err := tx.Get(testCtx(t), path)
		if err == nil {
			p = obj.(interface{ Partition() string }).Partition()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// runParallel runs fn(i) for i in [0,n) on n goroutines and returns the
// first error.
func runParallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TestConcurrentFolderAdds: two nodes adding different children to one
// folder both succeed; merging, not retrying, resolves most conflicts.
func TestConcurrentFolderAdds(t *testing.T) {
	checkConcurrentFolderAdds(t, twoNodes(t, newMem(t)), "/box")
}

func checkConcurrentFolderAdds(t *testing.T, nodes [2]*db.DB, dir string) {
	ctx := testCtx(t)
	setup, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		_, err := tx.MkdirAll(ctx, dir)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var tt tidTracker
	tt.add(setup)
	tt.sync(t, nodes, partitionOf(t, nodes[0], dir))
	const workers, per = 8, 10
	err = runParallel(workers, func(w int) error {
		d := nodes[w%2]
		for i := range per {
			name := fmt.Sprintf("w%d-%02d", w, i)
			tid, err := d.Update(ctx, func(tx *db.Tx) error {
				return tx.Create(ctx, dir+"/"+name, db.NewDocument(map[string]any{"by": w}))
			})
			if err != nil {
				return fmt.Errorf("add %s: %w", name, err)
			}
			tt.add(tid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tt.sync(t, nodes, partitionOf(t, nodes[0], dir))
	var names []string
	if err := nodes[1].View(ctx, func(tx *db.Tx) error {
		f, err := tx.Folder(ctx, dir)
		if err != nil {
			return err
		}
		names, err = f.Names(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != workers*per {
		t.Fatalf("%d children, want %d", len(names), workers*per)
	}
	s0, s1 := nodes[0].Stats(), nodes[1].Stats()
	t.Logf("conflicts %d merges %d retries %d", s0.Conflicts+s1.Conflicts, s0.Merges+s1.Merges, s0.Retries+s1.Retries)
}

// TestSameNameAddConflicts: the same name added by two transactions is a
// conflict; Update runs the loser again and it sees the winner's child.
func TestSameNameAddConflicts(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	tx1, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx1.Put(ctx, "/x", db.NewDocument(map[string]any{"by": 1})); err != nil {
		t.Fatal(err)
	}
	if err := tx2.Put(ctx, "/x", db.NewDocument(map[string]any{"by": 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Commit(ctx); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second add of one name: %v", err)
	}
}

// TestCounterIncrements: increments from many goroutines over two nodes
// sum exactly.
func TestCounterIncrements(t *testing.T) {
	checkCounterIncrements(t, twoNodes(t, newMem(t)), "/hits")
}

func checkCounterIncrements(t *testing.T, nodes [2]*db.DB, path string) {
	ctx := testCtx(t)
	m0, m1 := nodes[0].Stats(), nodes[1].Stats()
	mergesBefore, retriesBefore := m0.Merges+m1.Merges, m0.Retries+m1.Retries
	setup, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, path, db.NewCounter(0))
	})
	if err != nil {
		t.Fatal(err)
	}
	var tt tidTracker
	tt.add(setup)
	tt.sync(t, nodes, partitionOf(t, nodes[0], path))
	const workers, per = 8, 25
	err = runParallel(workers, func(w int) error {
		for range per {
			tid, err := nodes[w%2].Update(ctx, func(tx *db.Tx) error {
				c, err := tx.Counter(ctx, path)
				if err != nil {
					return err
				}
				c.Add(1)
				return nil
			})
			if err != nil {
				return err
			}
			tt.add(tid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tt.sync(t, nodes, partitionOf(t, nodes[0], path))
	var got int64
	if err := nodes[0].View(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, path)
		if err == nil {
			got = c.Value()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != workers*per {
		t.Fatalf("counter %d, want %d", got, workers*per)
	}
	s0, s1 := nodes[0].Stats(), nodes[1].Stats()
	merges := s0.Merges + s1.Merges - mergesBefore
	t.Logf("merges %d, retries %d", merges, s0.Retries+s1.Retries-retriesBefore)
}

// TestCounterMergeDeterministic: two transactions based on one counter
// revision both commit; the second merges instead of failing.
func TestCounterMergeDeterministic(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{})
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/c", db.NewCounter(10)) }); err != nil {
		t.Fatal(err)
	}
	var txs [2]*db.Tx
	for i := range txs {
		tx, err := d.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tx.Counter(ctx, "/c")
		if err != nil {
			t.Fatal(err)
		}
		c.Add(int64(i + 1))
		txs[i] = tx
	}
	for _, tx := range txs {
		if _, err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		c, err := tx.Counter(ctx, "/c")
		if err == nil && c.Value() != 13 {
			err = fmt.Errorf("counter %d, want 13", c.Value())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if s := d.Stats(); s.Merges != 1 || s.Conflicts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDocumentConflictsSerialize: read-modify-write of one document from
// many goroutines over two nodes: every write survives, in one serial
// order (each writer saw exactly the previous one's state).
func TestDocumentConflictsSerialize(t *testing.T) {
	checkDocumentConflictsSerialize(t, twoNodes(t, newMem(t)), "/doc")
}

func checkDocumentConflictsSerialize(t *testing.T, nodes [2]*db.DB, path string) {
	ctx := testCtx(t)
	m0, m1 := nodes[0].Stats(), nodes[1].Stats()
	mergesBefore, retriesBefore := m0.Merges+m1.Merges, m0.Retries+m1.Retries
	setup, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, path, db.NewDocument(map[string]any{"log": []any{}, "n": 0}))
	})
	if err != nil {
		t.Fatal(err)
	}
	var tt tidTracker
	tt.add(setup)
	tt.sync(t, nodes, partitionOf(t, nodes[0], path))
	const workers, per = 6, 8
	err = runParallel(workers, func(w int) error {
		for i := range per {
			tid, err := nodes[w%2].Update(ctx, func(tx *db.Tx) error {
				doc, err := tx.Document(ctx, path)
				if err != nil {
					return err
				}
				n := doc.Data["n"].(int64)
				doc.Data["n"] = n + 1
				doc.Data["log"] = append(doc.Data["log"].([]any), fmt.Sprintf("%d:%d-%d", n, w, i))
				return nil
			})
			if err != nil {
				return err
			}
			tt.add(tid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tt.sync(t, nodes, partitionOf(t, nodes[0], path))
	if err := nodes[1].View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, path)
		if err != nil {
			return err
		}
		log := doc.Data["log"].([]any)
		if doc.Data["n"] != int64(workers*per) || len(log) != workers*per {
			return fmt.Errorf("n=%v, %d log entries, want %d", doc.Data["n"], len(log), workers*per)
		}
		seen := map[string]bool{}
		for i, e := range log {
			var n, w, k int
			if _, err := fmt.Sscanf(e.(string), "%d:%d-%d", &n, &w, &k); err != nil || n != i {
				return fmt.Errorf("entry %d is %q: not one serial order", i, e)
			}
			key := fmt.Sprintf("%d-%d", w, k)
			if seen[key] {
				return fmt.Errorf("write %s applied twice", key)
			}
			seen[key] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s0, s1 := nodes[0].Stats(), nodes[1].Stats()
	if n := s0.Merges + s1.Merges - mergesBefore; n != 0 {
		t.Errorf("documents were merged %d times", n)
	}
	t.Logf("retries %d", s0.Retries+s1.Retries-retriesBefore)
}

// TestLargeFolderBuckets: a folder past MaxInlineChildren moves its
// children into buckets; adding one child then rewrites one bucket, not
// the folder; concurrent adds from two nodes still all land.
func TestLargeFolderBuckets(t *testing.T) {
	ctx := testCtx(t)
	st := newMem(t)
	nodes := twoNodes(t, st)
	n := 3*db.MaxBucketChildren + 17
	if testing.Short() {
		n = db.MaxInlineChildren + 50
	}
	if _, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		f, err := tx.MkdirAll(ctx, "/big")
		if err != nil {
			return err
		}
		for i := range n {
			if err := f.Put(ctx, fmt.Sprintf("c%05d", i), db.NewCounter(int64(i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var bigOid storage.Oid
	if err := nodes[0].View(ctx, func(tx *db.Tx) error {
		f, err := tx.Folder(ctx, "/big")
		if err != nil {
			return err
		}
		bigOid, _ = f.Oid()
		if l, err := f.Len(ctx); err != nil || l != n {
			return fmt.Errorf("len %d %v", l, err)
		}
		names, err := f.Names(ctx)
		if err != nil {
			return err
		}
		if len(names) != n || !slices.IsSorted(names) {
			return fmt.Errorf("%d names, sorted %v", len(names), slices.IsSorted(names))
		}
		page, err := f.List(ctx, "c00100", 5)
		if err != nil {
			return err
		}
		if !slices.Equal(page, []string{"c00101", "c00102", "c00103", "c00104", "c00105"}) {
			return fmt.Errorf("page %v", page)
		}
		c, err := tx.Counter(ctx, fmt.Sprintf("/big/c%05d", n-1))
		if err != nil {
			return err
		}
		if c.Value() != int64(n-1) {
			return fmt.Errorf("last child %d", c.Value())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	head, err := st.Load(ctx, bigOid)
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Refs) >= n/10 || len(head.Data) > 1024 {
		t.Fatalf("folder head has %d refs, %d bytes: not bucketed", len(head.Refs), len(head.Data))
	}
	// One more child rewrites a bucket only.
	tid, err := nodes[1].Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/big/c00050x", db.NewCounter(1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := st.Load(ctx, bigOid); after.Serial == tid {
		t.Fatal("adding one child rewrote the folder head")
	}
	// Concurrent adds from two nodes across the range all land.
	const workers, per = 6, 20
	err = runParallel(workers, func(w int) error {
		for i := range per {
			name := fmt.Sprintf("c%05d-%d", (i*97+w*13)%n, w)
			if _, err := nodes[w%2].Update(ctx, func(tx *db.Tx) error {
				return tx.Put(ctx, "/big/"+name, db.NewCounter(0))
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].View(ctx, func(tx *db.Tx) error {
		f, err := tx.Folder(ctx, "/big")
		if err != nil {
			return err
		}
		l, err := f.Len(ctx)
		if err != nil {
			return err
		}
		if want := n + 1 + workers*per; l != want {
			return fmt.Errorf("len %d, want %d", l, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Deleting from buckets works.
	if _, err := nodes[0].Update(ctx, func(tx *db.Tx) error {
		for i := 0; i < n; i += 2 {
			if err := tx.Delete(ctx, fmt.Sprintf("/big/c%05d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].View(ctx, func(tx *db.Tx) error {
		if ok, err := tx.Exists(ctx, "/big/c00000"); ok || err != nil {
			return fmt.Errorf("deleted child: %v %v", ok, err)
		}
		if ok, err := tx.Exists(ctx, "/big/c00001"); !ok || err != nil {
			return fmt.Errorf("kept child: %v %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestUpdateGivesUp: a function that always conflicts stops after
// MaxAttempts, and a cancelled context stops the retries.
func TestUpdateGivesUp(t *testing.T) {
	ctx := testCtx(t)
	d := openDB(t, newMem(t), db.Options{MaxAttempts: 3})
	calls := 0
	_, err := d.Update(ctx, func(tx *db.Tx) error {
		calls++
		return db.MergeConflict("always")
	})
	if !errors.Is(err, storage.ErrConflict) || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	_, err = d.Update(cctx, func(tx *db.Tx) error {
		calls++
		cancel()
		return db.MergeConflict("always")
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	// A plain error is returned at once.
	boom := errors.New("boom")
	calls = 0
	if _, err := d.Update(ctx, func(tx *db.Tx) error { calls++; return boom }); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

package filestorage_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// setStatus overwrites the status byte of the transaction at pos (not
// covered by the checksum) in the file at path.
func setStatus(t *testing.T, path string, pos int64, status byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{status}, pos+16); err != nil {
		t.Fatal(err)
	}
}

// TestVotedStatusBeforeDurableDataIsRefused: a transaction in the middle
// of the file whose status reads "voted, not finished" ('c'), followed by
// transactions written once it was durable. The status byte is outside
// the checksum, so only the durable end shows this is damage (a
// transaction is durable only once finished) and not a group commit
// torn by a power loss: open must refuse, as for any other damage before
// durable data, and not cut the acknowledged transactions after it.
func TestVotedStatusBeforeDurableDataIsRefused(t *testing.T) {
	for _, policy := range []filestorage.SyncPolicy{filestorage.SyncAlways, filestorage.SyncGroup} {
		t.Run(string(policy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			st := open(t, path, filestorage.Options{Sync: policy})
			counter(t, st, 1, 3)
			mid := st.DataEnd()
			counter(t, st, 4, 3)
			live := path + ".live"
			copyFile(t, path, live) // with the preallocated zeros
			closeOK(t, st)
			for _, p := range []string{path, live} {
				_ = os.Remove(path + ".index")
				setStatus(t, p, mid, 'c')
				refused(t, p)
			}
		})
	}
}

// TestVotedStatusInTornGroupIsCut: the same status in a group commit torn
// by a power loss (the page holding the flipped status never reached
// the disk, a later transaction of the group did) is no damage: open
// cuts at it and saves the group, as before.
func TestVotedStatusInTornGroupIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	base := counter(t, st, 1, 3)
	snap, b := unsyncedGroup(t, st, path, small(3), 0, false)
	closeOK(t, st)
	setStatus(t, snap, b[0], 'c')
	whole, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	st = open(t, snap, filestorage.Options{})
	checkCutAt(t, st, snap, b[0], whole[b[0]:b[3]], base, 3)
	closeOK(t, st)
}

// TestIndexCoversOnlyDurableData: a saved index is trusted at open for
// everything before the position it covers, so that position must be
// durable before the index is: else a power loss can leave the index
// (fsynced) and a later transaction of the data file on disk, and an
// earlier one torn, and open trusts the index over the torn one, serving
// a transaction that never reached the disk as committed (its records
// read as damage) instead of cutting it as a torn group commit. With
// sync "none" nothing else ever fsyncs the data file.
func TestIndexCoversOnlyDurableData(t *testing.T) {
	for _, policy := range []filestorage.SyncPolicy{filestorage.SyncNone, filestorage.SyncGroup, filestorage.SyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Data.fs")
			st := open(t, path, filestorage.Options{Sync: policy, IndexInterval: -1})
			counter(t, st, 1, 3)
			if err := st.SaveIndex(); err != nil {
				t.Fatal(err)
			}
			if d, end := st.Durable(), st.DataEnd(); d < end {
				t.Fatalf("index saved covering %d, but the data is known durable only up to %d", end, d)
			}
			closeOK(t, st)
		})
	}
}

// TestCloseWhileCommitting: writers commit (group commit, the default)
// and abort, some after voting, while Close runs; a copy of the data file
// taken mid-way stands for a kill -9. After reopening, every object holds
// exactly the last value whose Finish returned before Close (none whose
// Finish failed or whose transaction was aborted), and the copy holds at
// least every value acknowledged before it was taken.
func TestCloseWhileCommitting(t *testing.T) {
	for _, policy := range []filestorage.SyncPolicy{filestorage.SyncGroup, filestorage.SyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			ctx := testCtx(t)
			path := filepath.Join(t.TempDir(), "Data.fs")
			st := open(t, path, filestorage.Options{Sync: policy})
			const writers = 6
			acked := make([]atomic.Int64, writers) // last acknowledged value per writer
			var wg sync.WaitGroup
			snapped := make(chan [writers]int64, 1)
			for w := range writers {
				wg.Go(func() {
					oid := storage.Oid(1000 + w)
					var serial storage.Tid
					for i := int64(1); ; i++ {
						tx, err := st.Begin(ctx, storage.TxMeta{User: "w"})
						if err != nil {
							return
						}
						data := []byte(strconv.FormatInt(i, 10))
						if i%5 == 0 {
							// Long zero runs, as preallocated space reads.
							data = append(make([]byte, 3000), data...)
						}
						if err := tx.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: data}); err != nil {
							_ = tx.Abort(ctx)
							return
						}
						if err := tx.Vote(ctx); err != nil {
							_ = tx.Abort(ctx)
							if errors.Is(err, storage.ErrClosed) {
								return
							}
							t.Errorf("vote: %v", err)
							return
						}
						if i%3 == 0 {
							_ = tx.Abort(ctx)
							continue
						}
						tid, err := tx.Finish(ctx)
						if err != nil {
							return
						}
						serial = tid
						acked[w].Store(i)
					}
				})
			}
			wg.Go(func() {
				time.Sleep(30 * time.Millisecond)
				var before [writers]int64
				for w := range writers {
					before[w] = acked[w].Load()
				}
				if err := st.WhileNoWrites(func() { copyFile(t, path, path+".kill9") }); err != nil {
					t.Errorf("copy: %v", err)
				}
				snapped <- before
				time.Sleep(30 * time.Millisecond)
				if err := st.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			wg.Wait()
			before := <-snapped
			if acked[0].Load() == 0 {
				t.Fatal("no commit was acknowledged before Close")
			}
			check := func(p string, want func(w int) int64, exact bool) {
				t.Helper()
				st := open(t, p, filestorage.Options{Sync: policy})
				for w := range writers {
					oid := storage.Oid(1000 + w)
					i := want(w)
					rec, err := st.Load(ctx, oid)
					if i == 0 {
						if err != nil && !errors.Is(err, storage.ErrNotFound) {
							t.Fatalf("%s: load %s: %v", p, oid, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("%s: load %s: %v (value %d acknowledged)", p, oid, err, i)
					}
					got, err := strconv.ParseInt(string(bytes.TrimLeft(rec.Data, "\x00")), 10, 64)
					if err != nil {
						t.Fatalf("%s: %s holds %q", p, oid, rec.Data)
					}
					if exact && got != i || got < i {
						t.Fatalf("%s: %s holds %d, last acknowledged %d", p, oid, got, i)
					}
				}
				closeOK(t, st)
			}
			check(path+".kill9", func(w int) int64 { return before[w] }, false)
			check(path, func(w int) int64 { return acked[w].Load() }, true)
		})
	}
}

// TestTransactionEndingAtAllocatedEnd: a transaction that ends exactly
// where the preallocated space ends (no zeros after it), voted then
// aborted, then committed, then followed by one that must extend the
// space; a kill -9 copy at each step reopens with every acknowledged
// transaction and nothing else.
func TestTransactionEndingAtAllocatedEnd(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	counter(t, st, 1, 1)
	const oid = storage.Oid(5)
	store := func(serial storage.Tid, n int, finish bool) storage.Tid {
		t.Helper()
		tx, err := st.Begin(ctx, storage.TxMeta{User: "fit"})
		if err != nil {
			t.Fatal(err)
		}
		data := append(make([]byte, n-1), 7) // zeros, then a mark
		if err := tx.Store(ctx, storage.Record{Oid: oid, Serial: serial, Data: data}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Vote(ctx); err != nil {
			t.Fatal(err)
		}
		if !finish {
			if err := tx.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			return 0
		}
		tid, err := tx.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	before := st.DataEnd()
	probe := store(0, 100, true)
	overhead := st.DataEnd() - before - 100
	fit := int(st.Alloc() - st.DataEnd() - overhead)
	kill9 := func(name string, want storage.Tid, size int) {
		t.Helper()
		p := path + "." + name
		if err := st.WhileNoWrites(func() { copyFile(t, path, p) }); err != nil {
			t.Fatal(err)
		}
		c := open(t, p, filestorage.Options{})
		rec, err := c.Load(ctx, oid)
		if err != nil || rec.Serial != want || len(rec.Data) != size || rec.Data[size-1] != 7 {
			t.Fatalf("%s: oid 5: serial %s (want %s), %d bytes (want %d), err %v", name, rec.Serial, want, len(rec.Data), size, err)
		}
		if trs := trFiles(t, p); len(trs) != 0 {
			t.Fatalf("%s: open cut a tail: %v", name, trs)
		}
		closeOK(t, c)
	}
	store(probe, fit, false)
	if st.DataEnd() != before+100+overhead {
		t.Fatalf("abort left the data end at %d", st.DataEnd())
	}
	kill9("aborted", probe, 100)
	// The abort truncated the exact fit away (nothing was allocated past
	// it); a new small transaction allocates again.
	probe = store(probe, 100, true)
	kill9("reallocated", probe, 100)
	fit = int(st.Alloc() - st.DataEnd() - overhead)
	alloc := st.Alloc()
	exact := store(probe, fit, true)
	if st.DataEnd() != alloc || st.Alloc() != alloc {
		t.Fatalf("the transaction ends at %d, allocated %d (was %d): not an exact fit", st.DataEnd(), st.Alloc(), alloc)
	}
	kill9("exact", exact, fit)
	last := store(exact, 200, true)
	if st.Alloc() <= alloc {
		t.Fatal("the next transaction did not extend the space")
	}
	kill9("extended", last, 200)
	closeOK(t, st)
	st = open(t, path, filestorage.Options{})
	if rec, err := st.Load(ctx, oid); err != nil || rec.Serial != last {
		t.Fatalf("after close: %v %v", rec.Serial, err)
	}
}

// TestPackRenameNotDurableStopsCommits: when the directory fsync after
// pack renames the packed file over Data.fs fails, the rename may not
// survive a power loss: the old file would come back under the name,
// without every commit made to the packed file since. Those commits
// must not be acknowledged: the storage refuses them until it is
// reopened, and the reopen makes the rename durable.
func TestPackRenameNotDurableStopsCommits(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "Data.fs")
	st := open(t, path, filestorage.Options{})
	base := counter(t, st, 1, 3)
	st.SetPackDirSyncHook(func() error { return errors.New("injected: directory fsync failed") })
	if err := st.Pack(ctx, base[len(base)-1]+1, nil); err != nil {
		t.Fatalf("pack: %v", err) // the packed file is in place: pack itself succeeded
	}
	if v := rootVersion(t, st); v != 3 {
		t.Fatalf("after pack: root at %d", v)
	}
	serial := load(t, st, storage.RootOid).Serial
	if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Serial: serial, Data: []byte("4")}); err == nil {
		t.Fatal("a commit after a pack whose rename is not durable was acknowledged")
	}
	_ = st.Close()
	st = open(t, path, filestorage.Options{})
	if v := rootVersion(t, st); v != 3 {
		t.Fatalf("after reopen: root at %d, want 3", v)
	}
	counter(t, st, 4, 1)
	closeOK(t, st)
}

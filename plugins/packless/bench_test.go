package packless_test

import (
	"context"
	"errors"
	"fmt"

	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/memstorage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/packless"
)

// diskUse sums the sizes of the files under dir.
func diskUse(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by a compaction while we walked
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

type churnResult struct {
	live, disk, peak int64
	commits          int
}

func (r churnResult) ratio() float64     { return float64(r.disk) / float64(r.live) }
func (r churnResult) peakRatio() float64 { return float64(r.peak) / float64(r.live) }

// churn builds a session store (root -> 100 buckets -> sessions), then
// rewrites random sessions with fresh random data, perTxn sessions per
// commit, and measures disk use against the live data (every current
// record's Size) at the end and at its peak.
func churn(tb testing.TB, dir string, sessions, updates, perTxn int, writeBuffer int64) churnResult {
	tb.Helper()
	ctx := context.Background()
	st, err := packless.Open(dir, packless.Options{NoSync: true, WriteBuffer: writeBuffer})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	const buckets = 100
	rng := rand.New(rand.NewPCG(1, 2))
	sessionData := func() []byte {
		d := make([]byte, 200+rng.IntN(200))
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		return d
	}
	bucketOids, err := st.NewOids(ctx, buckets)
	if err != nil {
		tb.Fatal(err)
	}
	sessOids, err := st.NewOids(ctx, sessions)
	if err != nil {
		tb.Fatal(err)
	}
	serial := map[storage.Oid]storage.Tid{}
	size := map[storage.Oid]int64{}
	recs := []storage.Record{{Oid: storage.RootOid, Data: []byte("root"), Refs: bucketOids}}
	for b, bo := range bucketOids {
		var refs []storage.Oid
		for i := b; i < sessions; i += buckets {
			refs = append(refs, sessOids[i])
		}
		recs = append(recs, storage.Record{Oid: bo, Data: make([]byte, 64), Refs: refs})
	}
	for _, so := range sessOids {
		recs = append(recs, storage.Record{Oid: so, Data: sessionData()})
	}
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		serial[r.Oid] = tid
		size[r.Oid] = int64(r.Size())
	}
	var res churnResult
	for done := 0; done < updates; {
		batch := make([]storage.Record, 0, perTxn)
		picked := map[storage.Oid]bool{}
		for len(batch) < perTxn && done+len(batch) < updates {
			so := sessOids[rng.IntN(sessions)]
			if picked[so] {
				continue
			}
			picked[so] = true
			batch = append(batch, storage.Record{Oid: so, Serial: serial[so], Data: sessionData()})
		}
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, batch...)
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range batch {
			serial[r.Oid] = tid
			size[r.Oid] = int64(r.Size())
		}
		done += len(batch)
		res.commits++
		if res.commits%2000 == 0 {
			res.peak = max(res.peak, diskUse(tb, dir))
		}
	}
	for _, s := range size {
		res.live += s
	}
	res.disk = diskUse(tb, dir)
	res.peak = max(res.peak, res.disk)
	return res
}

// BenchmarkChurn is the figure: 1,000,000 session updates over
// 10,000 live sessions, one session per commit (as a web request commits
// it), without fsync. It reports disk use against live data. It runs only
// with -bench and not under -short.
func BenchmarkChurn(b *testing.B) {
	if testing.Short() {
		b.Skip("1M updates; skipped under -short")
	}
	for _, wb := range []int64{packless.DefaultWriteBuffer, 1 << 20} {
		b.Run(fmt.Sprintf("write_buffer=%dKiB", wb>>10), func(b *testing.B) {
			for range b.N {
				r := churn(b, b.TempDir(), 10_000, 1_000_000, 1, wb)
				b.ReportMetric(r.ratio(), "disk/live")
				b.ReportMetric(r.peakRatio(), "peak-disk/live")
				b.ReportMetric(float64(r.live)/(1<<20), "live-MiB")
				b.ReportMetric(float64(r.disk)/(1<<20), "disk-MiB")
				b.ReportMetric(float64(r.commits)/b.Elapsed().Seconds(), "commits/s")
			}
		})
	}
}

func benchStorages(b *testing.B, run func(b *testing.B, st storage.Storage)) {
	for _, c := range []struct {
		name string
		open func(b *testing.B) storage.Storage
	}{
		{"memstorage", func(b *testing.B) storage.Storage { return memstorage.New(memstorage.Options{}) }},
		{"packless-nosync", func(b *testing.B) storage.Storage {
			st, err := packless.Open(b.TempDir(), packless.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"packless-sync", func(b *testing.B) storage.Storage {
			st, err := packless.Open(b.TempDir(), packless.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			st := c.open(b)
			b.Cleanup(func() { _ = st.Close() })
			run(b, st)
		})
	}
}

// BenchmarkCommit1 commits one 200-byte record per transaction; the
// memstorage and no-sync runs are the baselines for the synced one.
func BenchmarkCommit1(b *testing.B) {
	benchStorages(b, func(b *testing.B, st storage.Storage) {
		ctx := context.Background()
		oids := fill(b, st, 100, 100, 200)
		serial := map[storage.Oid]storage.Tid{}
		for _, o := range oids {
			r, err := st.Load(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			serial[o] = r.Serial
		}
		data := make([]byte, 200)
		b.ResetTimer()
		for i := range b.N {
			o := oids[i%len(oids)]
			tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: o, Serial: serial[o], Data: data})
			if err != nil {
				b.Fatal(err)
			}
			serial[o] = tid
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
}

// BenchmarkCommit1000 commits 1000 records of 200 bytes per transaction.
func BenchmarkCommit1000(b *testing.B) {
	benchStorages(b, func(b *testing.B, st storage.Storage) {
		ctx := context.Background()
		oids := fill(b, st, 1000, 1000, 200)
		serial := map[storage.Oid]storage.Tid{}
		for _, o := range oids {
			r, err := st.Load(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			serial[o] = r.Serial
		}
		data := make([]byte, 200)
		recs := make([]storage.Record, len(oids))
		b.ResetTimer()
		for range b.N {
			for i, o := range oids {
				recs[i] = storage.Record{Oid: o, Serial: serial[o], Data: data}
			}
			tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
			if err != nil {
				b.Fatal(err)
			}
			for _, o := range oids {
				serial[o] = tid
			}
		}
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkLoad loads random objects out of 100,000 records of 200
// bytes: from memstorage (the baseline), from a packless store just
// reopened (cold: empty block cache, so the first loads of each block go
// to the file), and from one whose blocks were all read once (warm).
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	mem := memstorage.New(memstorage.Options{})
	b.Cleanup(func() { _ = mem.Close() })
	memOids := fill(b, mem, n, 5000, 200)
	dir := b.TempDir()
	st, err := packless.Open(dir, packless.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	oids := fill(b, st, n, 5000, 200)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	reopen := func(b *testing.B) *packless.Storage {
		st, err := packless.Open(dir, packless.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		return st
	}
	run := func(b *testing.B, st storage.Storage, oids []storage.Oid) {
		rng := rand.New(rand.NewPCG(3, 4))
		b.ResetTimer()
		for range b.N {
			if _, err := st.Load(ctx, oids[rng.IntN(len(oids))]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "loads/s")
	}
	b.Run("memstorage", func(b *testing.B) { run(b, mem, memOids) })
	b.Run("packless-cold", func(b *testing.B) {
		st := reopen(b)
		run(b, st, oids)
		_ = st.Close()
	})
	b.Run("packless-warm", func(b *testing.B) {
		st := reopen(b)
		for _, o := range oids {
			if _, err := st.Load(ctx, o); err != nil {
				b.Fatal(err)
			}
		}
		run(b, st, oids)
		_ = st.Close()
	})
}

// BenchmarkRawLevelDB is the floor under packless: bare goleveldb puts of
// one 200-byte value (synced and not) and gets out of 100,000, with the
// options packless uses. Packless's figures divided by these are its
// overhead (reading the old record, the serial index, counts, meta).
func BenchmarkRawLevelDB(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("put-sync=%v", sync), func(b *testing.B) {
			db, err := leveldb.OpenFile(b.TempDir(), &opt.Options{Filter: filter.NewBloomFilter(10)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			v := make([]byte, 200)
			wo := &opt.WriteOptions{Sync: sync}
			b.ResetTimer()
			for i := range b.N {
				if err := db.Put([]byte(fmt.Sprintf("k%06d", i%100)), v, wo); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
	b.Run("get", func(b *testing.B) {
		dir := b.TempDir()
		db, err := leveldb.OpenFile(dir, &opt.Options{Filter: filter.NewBloomFilter(10)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		v := make([]byte, 200)
		var batch leveldb.Batch
		for i := range 100_000 {
			batch.Put([]byte(fmt.Sprintf("k%06d", i)), v)
			if batch.Len() == 5000 {
				if err := db.Write(&batch, nil); err != nil {
					b.Fatal(err)
				}
				batch.Reset()
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		b.ResetTimer()
		for range b.N {
			if _, err := db.Get([]byte(fmt.Sprintf("k%06d", rng.IntN(100_000))), nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
	})
}

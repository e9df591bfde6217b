package filestorage_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

var startupMB = flag.Int("filestorage.startup-mb", 1024, "size in MiB of the data file BenchmarkStartup builds")

func benchOpen(b *testing.B, path string, opts filestorage.Options) *filestorage.Storage {
	b.Helper()
	opts.Logger = hclog.NewNullLogger()
	st, err := filestorage.Open(path, opts)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkCommitOneRecord measures 1-record commits per second under
// each sync policy, with one writer and with 8 (and, for group commit, 32)
// concurrent writers, each on its own object so they never conflict; with
// a syncing policy, without preallocation of the data file (as before it
// existed) and with it, one after the other, so the two compare in the
// same run.
func BenchmarkCommitOneRecord(b *testing.B) {
	cases := []struct {
		p       filestorage.SyncPolicy
		writers int
	}{
		// always and group side by side, so they compare in one run.
		{filestorage.SyncAlways, 1}, {filestorage.SyncGroup, 1},
		{filestorage.SyncAlways, 4}, {filestorage.SyncGroup, 4},
		{filestorage.SyncAlways, 8}, {filestorage.SyncGroup, 8},
		{filestorage.SyncGroup, 32},
		{filestorage.SyncNone, 1}, {filestorage.SyncNone, 8},
	}
	for _, c := range cases {
		for _, prealloc := range []bool{false, true} {
			p, writers := c.p, c.writers
			opts := filestorage.Options{Sync: p}
			name := fmt.Sprintf("sync=%s/writers=%d", p, writers)
			if p != filestorage.SyncNone { // never preallocates
				name += "/prealloc=on"
				if !prealloc {
					opts = filestorage.WithoutPrealloc(opts)
					name = strings.Replace(name, "=on", "=off", 1)
				}
			} else if !prealloc {
				continue
			}
			b.Run(name, func(b *testing.B) {
				st := benchOpen(b, filepath.Join(b.TempDir(), "Data.fs"), opts)
				defer st.Close()
				ctx := context.Background()
				oids, err := st.NewOids(ctx, writers)
				if err != nil {
					b.Fatal(err)
				}
				data := bytes.Repeat([]byte("d"), 200)
				per := (b.N + writers - 1) / writers
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						var serial storage.Tid
						for range per {
							tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: oids[w], Serial: serial, Data: data})
							if err != nil {
								b.Error(err)
								return
							}
							serial = tid
						}
					})
				}
				wg.Wait()
				el := time.Since(start)
				b.ReportMetric(float64(per*writers)/el.Seconds(), "commits/s")
				b.ReportMetric(float64(st.Fsyncs())/float64(per*writers), "fsyncs/commit")
				if n := st.Fsyncs(); n > 0 {
					b.ReportMetric(float64(st.FsyncTime().Microseconds())/float64(n), "µs/fsync")
				}
			})
		}
	}
}

// BenchmarkCommit1000Records measures transactions of 1000 records of 200
// bytes, fsynced.
func BenchmarkCommit1000Records(b *testing.B) {
	st := benchOpen(b, filepath.Join(b.TempDir(), "Data.fs"), filestorage.Options{})
	defer st.Close()
	ctx := context.Background()
	oids, err := st.NewOids(ctx, 1000)
	if err != nil {
		b.Fatal(err)
	}
	serials := make([]storage.Tid, len(oids))
	data := bytes.Repeat([]byte("d"), 200)
	recs := make([]storage.Record, len(oids))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for i, o := range oids {
			recs[i] = storage.Record{Oid: o, Serial: serials[i], Data: data}
		}
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
		if err != nil {
			b.Fatal(err)
		}
		for i := range serials {
			serials[i] = tid
		}
	}
	b.ReportMetric(float64(b.N*len(oids))/time.Since(start).Seconds(), "records/s")
}

// BenchmarkColdLoad reopens a file of 20,000 objects (with its index) and
// loads every object once in random order: the cost of a fresh process's
// first reads. The page cache is not dropped (that needs root and would
// disturb other work on the machine), so this is the open-plus-pread
// path, not disk seeks.
func BenchmarkColdLoad(b *testing.B) {
	const n = 20000
	path := filepath.Join(b.TempDir(), "Data.fs")
	st := benchOpen(b, path, filestorage.Options{Sync: filestorage.SyncNone})
	ctx := context.Background()
	oids, err := st.NewOids(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("d"), 500)
	for i := 0; i < n; i += 1000 {
		var recs []storage.Record
		for _, o := range oids[i : i+1000] {
			recs = append(recs, storage.Record{Oid: o, Data: data})
		}
		if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	rand.Shuffle(len(oids), func(i, j int) { oids[i], oids[j] = oids[j], oids[i] })
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		st := benchOpen(b, path, filestorage.Options{ReadOnly: true})
		for _, o := range oids {
			if _, err := st.Load(ctx, o); err != nil {
				b.Fatal(err)
			}
		}
		_ = st.Close()
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "loads/s")
}

// BenchmarkPack packs a 20 MB file in which 1,000 objects have 20
// revisions of 1 kB each to the newest revision, with a baseline of
// copying the same file (read and write every byte, fsync).
func BenchmarkPack(b *testing.B) {
	src := filepath.Join(b.TempDir(), "Data.fs")
	st := benchOpen(b, src, filestorage.Options{Sync: filestorage.SyncNone})
	ctx := context.Background()
	oids, err := st.NewOids(ctx, 1000)
	if err != nil {
		b.Fatal(err)
	}
	serials := map[storage.Oid]storage.Tid{}
	data := bytes.Repeat([]byte("d"), 1000)
	for v := range 20 {
		recs := []storage.Record{}
		if v == 0 {
			recs = append(recs, storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: oids})
		}
		for _, o := range oids {
			recs = append(recs, storage.Record{Oid: o, Serial: serials[o], Data: data})
		}
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range oids {
			serials[o] = tid
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("copy-baseline", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(int64(len(raw)))
		for range b.N {
			f, err := os.Create(filepath.Join(dir, "copy"))
			if err != nil {
				b.Fatal(err)
			}
			in, err := os.ReadFile(src)
			if err == nil {
				_, err = f.Write(in)
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pack", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(int64(len(raw)))
		for range b.N {
			b.StopTimer()
			path := filepath.Join(dir, "Data.fs")
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				b.Fatal(err)
			}
			_ = os.Remove(path + ".index")
			st := benchOpen(b, path, filestorage.Options{})
			b.StartTimer()
			if err := st.Pack(ctx, storage.TidAt(time.Now()), nil); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = st.Close()
			b.StartTimer()
		}
	})
}

var startupFile struct {
	once sync.Once
	path string
	err  error
}

// buildStartupFile writes a data file of about *startupMB MiB once per
// test process: 4 kB records over 65,536 objects, 64 records per
// transaction.
func buildStartupFile(b *testing.B) string {
	startupFile.once.Do(func() {
		dir, err := os.MkdirTemp("", "filestorage-startup-")
		if err != nil {
			startupFile.err = err
			return
		}
		startupFile.path = filepath.Join(dir, "Data.fs")
		st, err := filestorage.Open(startupFile.path, filestorage.Options{Sync: filestorage.SyncNone, IndexInterval: -1})
		if err != nil {
			startupFile.err = err
			return
		}
		defer st.Close()
		ctx := context.Background()
		const objects, perTxn = 65536, 64
		oids, err := st.NewOids(ctx, objects)
		if err != nil {
			startupFile.err = err
			return
		}
		serials := make([]storage.Tid, objects)
		data := bytes.Repeat([]byte("s"), 4096)
		want := int64(*startupMB) << 20
		for i := 0; ; i += perTxn {
			if i%4096 == 0 {
				if fi, err := os.Stat(startupFile.path); err == nil && fi.Size() >= want {
					break
				}
			}
			recs := make([]storage.Record, perTxn)
			for j := range recs {
				k := (i + j) % objects
				recs[j] = storage.Record{Oid: oids[k], Serial: serials[k], Data: data}
			}
			tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
			if err != nil {
				startupFile.err = err
				return
			}
			for j := range recs {
				serials[(i+j)%objects] = tid
			}
		}
	})
	if startupFile.err != nil {
		b.Fatal(startupFile.err)
	}
	b.Cleanup(func() {}) // the file is removed by TestMain
	return startupFile.path
}

// BenchmarkStartup opens a data file of -filestorage.startup-mb MiB
// (default 1024) with a good index, and with the index deleted so open
// scans and rebuilds it. The ratio of the two is the point.
func BenchmarkStartup(b *testing.B) {
	if testing.Short() {
		b.Skip("short: builds a large file")
	}
	path := buildStartupFile(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, withIndex := range []bool{true, false} {
		name := "index"
		if !withIndex {
			name = "rebuild"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				if !withIndex {
					if err := os.Remove(path + ".index"); err != nil && !os.IsNotExist(err) {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				st := benchOpen(b, path, filestorage.Options{})
				b.StopTimer()
				if used, _ := st.OpenStats(); used != withIndex {
					b.Fatalf("index used %v, want %v", used, withIndex)
				}
				if err := st.Close(); err != nil { // saves the index again after a rebuild
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(fi.Size()>>20), "file-MiB")
		})
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if startupFile.path != "" {
		_ = os.RemoveAll(filepath.Dir(startupFile.path))
	}
	os.Exit(code)
}

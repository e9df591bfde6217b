package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/client"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// Each benchmark runs the db operation and its raw-storage baseline
// alternately in the same loop and reports both and their ratio, so the
// ratio is measured under the same conditions.

func benchDB(b *testing.B) (*db.DB, storage.Storage, storage.Oid) {
	ctx := context.Background()
	st := newMemB(b)
	d, err := db.Open(ctx, st, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	data := map[string]any{}
	for i := range 10 {
		data[fmt.Sprintf("key%d", i)] = fmt.Sprintf("value number %d of the benchmark document", i)
	}
	var oid storage.Oid
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		doc := db.NewDocument(data)
		if err := tx.Put(ctx, "/doc", doc); err != nil {
			return err
		}
		oid, _ = doc.Oid()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return d, st, oid
}

type timer struct {
	raw, db time.Duration
}

func (t *timer) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(t.raw.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(t.db.Nanoseconds())/n, "db-ns/op")
	if t.raw > 0 {
		b.ReportMetric(float64(t.db)/float64(t.raw), "db/raw")
	}
}

// BenchmarkReadDocument: a read-only transaction reading one document by
// path (LastTid, then the root and the document through the object
// cache) against the raw storage work it needs at least: LastTid and one
// LoadBefore.
func BenchmarkReadDocument(b *testing.B) {
	ctx := context.Background()
	d, st, oid := benchDB(b)
	var tm timer
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		last, err := st.LastTid(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.LoadBefore(ctx, oid, last+1); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := d.View(ctx, func(tx *db.Tx) error {
			doc, err := tx.Document(ctx, "/doc")
			if err == nil && len(doc.Data) != 10 {
				err = fmt.Errorf("doc has %d keys", len(doc.Data))
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tm.raw += t1.Sub(t0)
		tm.db += t2.Sub(t1)
	}
	tm.report(b)
}

// BenchmarkReadManyInOneTx: per object cost inside one transaction: 100
// documents read by path in one View, against 100 raw LoadBefores.
func BenchmarkReadManyInOneTx(b *testing.B) {
	ctx := context.Background()
	d, st, _ := benchDB(b)
	const n = 100
	oids := make([]storage.Oid, n)
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		f, err := tx.MkdirAll(ctx, "/many")
		if err != nil {
			return err
		}
		for i := range n {
			doc := db.NewDocument(map[string]any{"i": i, "text": "some text of a document"})
			if err := f.Put(ctx, fmt.Sprintf("d%03d", i), doc); err != nil {
				return err
			}
			oids[i], _ = doc.Oid()
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%03d", i)
	}
	var tm timer
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		last, err := st.LastTid(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, oid := range oids {
			if _, _, err := st.LoadBefore(ctx, oid, last+1); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		if err := d.View(ctx, func(tx *db.Tx) error {
			f, err := tx.Folder(ctx, "/many")
			if err != nil {
				return err
			}
			for _, name := range names {
				if _, err := f.Get(ctx, name); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tm.raw += t1.Sub(t0)
		tm.db += t2.Sub(t1)
	}
	tm.report(b)
}

// BenchmarkWriteDocument: an Update changing one key of a document,
// against a raw two-phase commit storing one record of the same size.
func BenchmarkWriteDocument(b *testing.B) {
	ctx := context.Background()
	d, st, _ := benchDB(b)
	rawOid, err := st.NewOids(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	var rec storage.Record
	if err := d.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		oid, _ := doc.Oid()
		rec, err = st.Load(ctx, oid)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	rec.Oid, rec.Serial = rawOid[0], storage.ZeroTid
	var tm timer
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		txn, err := st.Begin(ctx, storage.TxMeta{})
		if err != nil {
			b.Fatal(err)
		}
		if err := txn.Store(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			b.Fatal(err)
		}
		tid, err := txn.Finish(ctx)
		if err != nil {
			b.Fatal(err)
		}
		rec.Serial = tid
		t1 := time.Now()
		if _, err := d.Update(ctx, func(tx *db.Tx) error {
			doc, err := tx.Document(ctx, "/doc")
			if err == nil {
				doc.Data["key0"] = i
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tm.raw += t1.Sub(t0)
		tm.db += t2.Sub(t1)
	}
	tm.report(b)
}

// BenchmarkCounterIncrementParallel: concurrent increments of one counter
// (merged at commit) from all benchmark goroutines.
func BenchmarkCounterIncrementParallel(b *testing.B) {
	ctx := context.Background()
	d, _, _ := benchDB(b)
	if _, err := d.Update(ctx, func(tx *db.Tx) error { return tx.Put(ctx, "/c", db.NewCounter(0)) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Update(ctx, func(tx *db.Tx) error {
				c, err := tx.Counter(ctx, "/c")
				if err == nil {
					c.Add(1)
				}
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	s := d.Stats()
	b.ReportMetric(float64(s.Merges)/float64(b.N), "merges/op")
	b.ReportMetric(float64(s.Retries)/float64(b.N), "retries/op")
}

// BenchmarkReadDocumentNetwork: as BenchmarkReadDocument, through a real
// server and client: the baseline is the client's own (cached) LastTid
// and LoadBefore of the document.
func BenchmarkReadDocumentNetwork(b *testing.B) {
	ctx := context.Background()
	d, c := benchNetworkDB(b)
	var oid storage.Oid
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		doc := db.NewDocument(map[string]any{"title": "benchmark", "body": "some text of a document"})
		if err := tx.Put(ctx, "/doc", doc); err != nil {
			return err
		}
		oid, _ = doc.Oid()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var tm timer
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		last, err := c.LastTid(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.LoadBefore(ctx, oid, last+1); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := d.View(ctx, func(tx *db.Tx) error {
			_, err := tx.Document(ctx, "/doc")
			return err
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tm.raw += t1.Sub(t0)
		tm.db += t2.Sub(t1)
	}
	tm.report(b)
}

// BenchmarkWriteDocumentNetwork: an Update of one document through a
// real server, against a raw client commit of a record of the same size.
func BenchmarkWriteDocumentNetwork(b *testing.B) {
	ctx := context.Background()
	d, c := benchNetworkDB(b)
	var rec storage.Record
	if _, err := d.Update(ctx, func(tx *db.Tx) error {
		return tx.Put(ctx, "/doc", db.NewDocument(map[string]any{"title": "benchmark", "n": 0}))
	}); err != nil {
		b.Fatal(err)
	}
	if err := d.View(ctx, func(tx *db.Tx) error {
		doc, err := tx.Document(ctx, "/doc")
		if err != nil {
			return err
		}
		oid, _ := doc.Oid()
		rec, err = c.Load(ctx, oid)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	oids, err := c.NewOids(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	rec.Oid, rec.Serial = oids[0], storage.ZeroTid
	var tm timer
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		t0 := time.Now()
		txn, err := c.Begin(ctx, storage.TxMeta{})
		if err != nil {
			b.Fatal(err)
		}
		if err := txn.Store(ctx, rec); err != nil {
			b.Fatal(err)
		}
		if err := txn.Vote(ctx); err != nil {
			b.Fatal(err)
		}
		if rec.Serial, err = txn.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := d.Update(ctx, func(tx *db.Tx) error {
			doc, err := tx.Document(ctx, "/doc")
			if err == nil {
				doc.Data["n"] = i
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tm.raw += t1.Sub(t0)
		tm.db += t2.Sub(t1)
	}
	tm.report(b)
}

// benchNetworkDB opens a DB over a client of a real server that serves
// an in-memory main partition on a free loopback port.
func benchNetworkDB(b *testing.B) (*db.DB, *client.Client) {
	b.Helper()
	ctx := context.Background()
	addr := startServer(b, map[string]storage.Storage{"main": newMemB(b)})
	c, err := client.Open(ctx, client.Options{Addr: addr, Partition: "main", Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	d, err := db.Open(ctx, c, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	return d, c
}

package server

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

func TestInvLogDurableAndBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inv.log")
	log := hclog.NewNullLogger()
	l, err := openInvLog(path, 3, 100, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		tid := storage.Tid(101 + i)
		if err := l.add(tid, []storage.Oid{storage.Oid(i), 1000}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := l.after(105); ok {
		t.Fatal("log reaches past its bound")
	}
	got, ok := l.after(108)
	if !ok || len(got) != 2 || got[0].Tid != 109 || got[1].Tid != 110 {
		t.Fatalf("after(108) = %v, %v", got, ok)
	}
	if !l.touchedAfter(1000, 108) || l.touchedAfter(5, 108) || !l.touchedAfter(5, 100) {
		t.Fatal("touchedAfter answers wrong")
	}
	l.close()

	// Reopened against the same storage tid: the same entries.
	l2, err := openInvLog(path, 3, 110, log)
	if err != nil {
		t.Fatal(err)
	}
	got2, ok := l2.after(107)
	if !ok || !reflect.DeepEqual(got2, []wire.Invalidation{
		{Tid: 108, Oids: []storage.Oid{7, 1000}}, {Tid: 109, Oids: []storage.Oid{8, 1000}}, {Tid: 110, Oids: []storage.Oid{9, 1000}},
	}) {
		t.Fatalf("after reopen: %v, %v", got2, ok)
	}
	l2.close()

	// A torn tail: the last entry is lost, so the log no longer ends at
	// the storage's tid and must start afresh.
	fi, _ := os.Stat(path)
	os.Truncate(path, fi.Size()-3)
	l3, err := openInvLog(path, 3, 110, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l3.after(109); ok {
		t.Fatal("log with a torn tail trusted")
	}
	if got, ok := l3.after(110); !ok || len(got) != 0 {
		t.Fatalf("fresh log at the storage tid: %v %v", got, ok)
	}
	l3.close()

	// A storage that moved on without the log (commits while the server
	// was down): the log starts afresh.
	l4, err := openInvLog(path, 3, 120, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l4.after(110); ok {
		t.Fatal("stale log trusted")
	}
	l4.close()

	// Garbage instead of a log.
	os.WriteFile(path, []byte("not a log at all"), 0o644)
	l5, err := openInvLog(path, 3, 120, log)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := l5.after(120); !ok || len(got) != 0 {
		t.Fatalf("after garbage: %v %v", got, ok)
	}
	l5.close()
}

func TestInvLogCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inv.log")
	l, err := openInvLog(path, 4, 0, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.add(storage.Tid(i+1), []storage.Oid{1}); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 8 entries at most on disk (compaction at twice the bound), 28 bytes each.
	if fi.Size() > 16+8*28 {
		t.Fatalf("log file is %d bytes after 100 entries with a bound of 4", fi.Size())
	}
	l2, err := openInvLog(path, 4, 100, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer l2.close()
	if got, ok := l2.after(96); !ok || len(got) != 4 {
		t.Fatalf("after compaction and reopen: %v %v", got, ok)
	}
}

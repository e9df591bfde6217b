package packless_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestCollectFreesCycles: reference counting never frees a cycle; Collect
// does.
func TestCollectFreesCycles(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir(), packless.Options{})
	ab, err := st.NewOids(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, b := ab[0], ab[1]
	tid, err := storagetest.Commit(ctx, st, storage.TxMeta{},
		storage.Record{Oid: storage.RootOid, Data: []byte("root"), Refs: []storage.Oid{a}},
		storage.Record{Oid: a, Data: []byte("a"), Refs: []storage.Oid{b}},
		storage.Record{Oid: b, Data: []byte("b"), Refs: []storage.Oid{a}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storagetest.Commit(ctx, st, storage.TxMeta{}, storage.Record{Oid: storage.RootOid, Serial: tid, Data: []byte("root")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx, a); err != nil {
		t.Fatalf("a cycle was freed by counting alone (%v); the test's premise is wrong", err)
	}
	stats, err := st.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Removed != 2 || stats.Live != 1 {
		t.Fatalf("Collect = %+v, want 2 removed and the root live", stats)
	}
	for _, o := range ab {
		if _, err := st.Load(ctx, o); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("load %s after Collect = %v, want ErrNotFound", o, err)
		}
	}
	// Objects of a collected cycle may have existed at any earlier tid.
	if _, _, err := st.LoadBefore(ctx, a, tid+1); !errors.Is(err, storage.ErrNotSupported) {
		t.Fatalf("LoadBefore of a collected object = %v, want ErrNotSupported", err)
	}
}

// TestReferenceCountsStayExact runs random commits that add, relink and
// drop objects (an acyclic graph), then checks that the objects left are
// exactly those reachable from the root and that a full Collect finds
// nothing to fix: the counts kept commit by commit are exact.
func TestReferenceCountsStayExact(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir(), packless.Options{NoSync: true})
	rounds := 200
	if testing.Short() {
		rounds = 60
	}
	rng := rand.New(rand.NewPCG(5, 6))
	// Objects reference only objects with larger oids, so the graph stays
	// acyclic; the root may reference anything.
	var known []storage.Oid
	serial := map[storage.Oid]storage.Tid{}
	var rootRefs []storage.Oid
	// current walks the graph from the root's references.
	current := func() []storage.Oid {
		seen := map[storage.Oid]bool{}
		stack := slices.Clone(rootRefs)
		var out []storage.Oid
		for len(stack) > 0 {
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[o] {
				continue
			}
			seen[o] = true
			rec, err := st.Load(ctx, o)
			if err != nil {
				t.Fatalf("load reachable %s: %v", o, err)
			}
			out = append(out, o)
			stack = append(stack, rec.Refs...)
		}
		return out
	}
	pick := func(from []storage.Oid, above storage.Oid, n int) []storage.Oid {
		var out []storage.Oid
		for range n {
			if len(from) == 0 {
				break
			}
			o := from[rng.IntN(len(from))]
			if o > above {
				out = append(out, o)
			}
		}
		return out
	}
	for range rounds {
		live := current()
		fresh, err := st.NewOids(ctx, 1+rng.IntN(3))
		if err != nil {
			t.Fatal(err)
		}
		known = append(known, fresh...)
		var recs []storage.Record
		for _, o := range fresh {
			recs = append(recs, storage.Record{Oid: o, Data: []byte("new"), Refs: pick(append(live, fresh...), o, rng.IntN(3))})
		}
		for range rng.IntN(3) {
			if len(live) == 0 {
				break
			}
			o := live[rng.IntN(len(live))]
			if slices.ContainsFunc(recs, func(r storage.Record) bool { return r.Oid == o }) {
				continue
			}
			recs = append(recs, storage.Record{Oid: o, Serial: serial[o], Data: []byte("changed"), Refs: pick(append(live, fresh...), o, rng.IntN(4))})
		}
		if len(rootRefs) > 0 && rng.IntN(5) == 0 {
			i := rng.IntN(len(rootRefs))
			rootRefs = slices.Delete(rootRefs, i, i+1)
		}
		rootRefs = append(rootRefs, fresh[:rng.IntN(len(fresh)+1)]...)
		recs = append(recs, storage.Record{Oid: storage.RootOid, Serial: serial[storage.RootOid], Data: []byte("root"), Refs: rootRefs})
		tid, err := storagetest.Commit(ctx, st, storage.TxMeta{}, recs...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			serial[r.Oid] = tid
		}
	}
	// What is loadable is exactly what is reachable.
	reach := map[storage.Oid]bool{}
	stack := []storage.Oid{storage.RootOid}
	for len(stack) > 0 {
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if reach[o] {
			continue
		}
		rec, err := st.Load(ctx, o)
		if err != nil {
			t.Fatalf("reachable %s: %v", o, err)
		}
		reach[o] = true
		stack = append(stack, rec.Refs...)
	}
	for _, o := range known {
		_, err := st.Load(ctx, o)
		if reach[o] != (err == nil) {
			t.Fatalf("%s: reachable %v, load error %v", o, reach[o], err)
		}
	}
	stats, err := st.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Removed != 0 || stats.Recounted != 0 || stats.Reindexed != 0 || stats.Live != len(reach) {
		t.Fatalf("Collect on a store kept by counting = %+v, want nothing to fix and %d live", stats, len(reach))
	}
	t.Logf("%d rounds, %d oids used, %d live", rounds, len(known), len(reach))
}

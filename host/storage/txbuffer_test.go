package storage

import (
	"context"
	"errors"
	"testing"
)

func TestStoreBufferKeepsFirstOrderLastRevision(t *testing.T) {
	var b StoreBuffer
	ctx := context.Background()
	data := []byte("one")
	for _, r := range []Record{{Oid: 3, Data: data}, {Oid: 1, Data: []byte("x")}, {Oid: 3, Data: []byte("three"), Refs: []Oid{1}}} {
		if err := b.Add(ctx, "test", r); err != nil {
			t.Fatal(err)
		}
	}
	data[0] = 'X' // the buffer holds its own copy
	got := b.Records()
	if b.Len() != 2 || got[0].Oid != 3 || got[1].Oid != 1 {
		t.Fatalf("records %+v, want oids 3 then 1", got)
	}
	if string(got[0].Data) != "three" || len(got[0].Refs) != 1 {
		t.Fatalf("oid 3 holds %q %v, want the last store", got[0].Data, got[0].Refs)
	}
	if err := b.Add(ctx, "test", Record{Oid: 9}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil data: %v, want ErrInvalid", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Add(cctx, "test", Record{Oid: 9, Data: []byte{}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatal("Reset kept records")
	}
}

func TestTxPhaseChecks(t *testing.T) {
	cases := []struct {
		p                   TxPhase
		store, vote, finish error
	}{
		{TxOpen, nil, nil, ErrInvalid},
		{TxVoted, ErrInvalid, ErrInvalid, nil},
		{TxFailed, ErrInvalid, ErrInvalid, ErrInvalid},
		{TxDone, ErrClosed, ErrClosed, ErrClosed},
	}
	check := func(what string, p TxPhase, got, want error) {
		t.Helper()
		if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Errorf("%s in phase %d: %v, want %v", what, p, got, want)
		}
	}
	for _, c := range cases {
		check("store", c.p, c.p.CheckStore("test", 1), c.store)
		check("vote", c.p, c.p.CheckVote("test"), c.vote)
		check("finish", c.p, c.p.CheckFinish("test"), c.finish)
	}
}

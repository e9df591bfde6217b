package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
)

// commitOne commits recs on st with storage.CommitOnePhase.
func commitOne(ctx context.Context, st storage.Storage, recs ...storage.Record) (storage.Tid, error) {
	txn, err := st.Begin(ctx, storage.TxMeta{User: "one-phase"})
	if err != nil {
		return 0, err
	}
	for _, r := range recs {
		if err := txn.Store(ctx, r); err != nil {
			_ = txn.Abort(ctx)
			return 0, err
		}
	}
	tid, err := storage.CommitOnePhase(ctx, txn)
	if err != nil {
		_ = txn.Abort(ctx)
	}
	return tid, err
}

func TestCommitOnePhaseConflictReportsEveryOid(t *testing.T) {
	ts := startServer(t, nil)
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := a.NewOids(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var recs []storage.Record
	for _, o := range oids {
		recs = append(recs, storage.Record{Oid: o, Data: []byte("v1")})
	}
	t1, err := commitOne(ctx, a, recs...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		recs[i].Serial, recs[i].Data = t1, []byte("v2")
	}
	t2, err := commitOne(ctx, a, recs...)
	if err != nil {
		t.Fatal(err)
	}
	// b writes all three based on t1: every one conflicts.
	for i := range recs {
		recs[i].Data = []byte("stale")
	}
	_, err = commitOne(ctx, b, recs...)
	var ce *storage.ConflictError
	if !errors.As(err, &ce) || !storage.IsVoteFailure(err) {
		t.Fatalf("stale one-phase commit: %v, want a *ConflictError", err)
	}
	if got := ce.Oids(); !slices.Equal(got, oids) {
		t.Fatalf("conflicting oids %v, want %v", got, oids)
	}
	for _, c := range ce.Conflicts {
		if c.Expected != t1 || c.Actual != t2 {
			t.Fatalf("conflict %+v, want expected %s actual %s", c, t1, t2)
		}
	}
	// The failed commit left nothing and released the partition's lock.
	for i := range recs {
		recs[i].Serial, recs[i].Data = t2, []byte("v3")
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	t3, err := commitOne(lctx, b, recs...)
	if err != nil {
		t.Fatalf("commit after a conflict: %v", err)
	}
	if err := a.WaitForTid(ctx, t3); err != nil {
		t.Fatal(err)
	}
	for _, o := range oids {
		r, err := a.Load(ctx, o)
		if err != nil || string(r.Data) != "v3" || r.Serial != t3 {
			t.Fatalf("load %s: %q@%s, %v", o, r.Data, r.Serial, err)
		}
	}
}

// TestCommitOnePhaseInvalidationsInOrder: one-phase commits from two
// clients reach a third in tid order, every one exactly once, and each
// committer's own cache holds what it committed.
func TestCommitOnePhaseInvalidationsInOrder(t *testing.T) {
	ts := startServer(t, nil)
	w1 := openClient(t, ts.addr, nil)
	w2 := openClient(t, ts.addr, nil)
	watcher := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := w1.NewOids(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []storage.Tid
	stop := watcher.Watch(func(tid storage.Tid, _ []storage.Oid) {
		mu.Lock()
		seen = append(seen, tid)
		mu.Unlock()
	})
	defer stop()
	const n = 40
	tids := make(chan storage.Tid, 2*n)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for i, c := range []*Client{w1, w2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oid := oids[i]
			var serial storage.Tid
			for k := 0; k < n; k++ {
				tid, err := commitOne(ctx, c, storage.Record{Oid: oid, Serial: serial, Data: []byte{byte(k)}})
				if err != nil {
					errs <- err
					return
				}
				// The committer's cache has its own commit at once.
				hits := c.Stats().Hits
				r, err := c.Load(ctx, oid)
				if err != nil || r.Serial != tid || c.Stats().Hits != hits+1 {
					errs <- errors.New("committer's cache does not hold its own commit")
					return
				}
				serial = tid
				tids <- tid
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(tids)
	var all []storage.Tid
	for tid := range tids {
		all = append(all, tid)
	}
	slices.Sort(all)
	if err := watcher.WaitForTid(ctx, all[len(all)-1]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, all) {
		t.Fatalf("watcher saw %d tids %v, want %d in order %v", len(seen), seen, len(all), all)
	}
}

// gatedStorage holds every transaction of user "gated" inside Vote until
// the gate opens, so a test can act while a commit is in the backend.
type gatedStorage struct {
	storage.Storage
	entered chan struct{}
	gate    chan struct{}
}

func (s *gatedStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil || m.User != "gated" {
		return t, err
	}
	return &gatedTxn{Txn: t, s: s}, nil
}

type gatedTxn struct {
	storage.Txn
	s *gatedStorage
}

func (t *gatedTxn) Vote(ctx context.Context) error {
	t.s.entered <- struct{}{}
	<-t.s.gate
	return t.Txn.Vote(ctx)
}

// TestCommitOnePhaseClientGoneMidCommit: the client disconnects while
// its Commit is in the backend. The server finishes the commit (it had
// started), publishes it to the others, and leaves the commit lock free.
func TestCommitOnePhaseClientGoneMidCommit(t *testing.T) {
	var gs *gatedStorage
	ts := startServer(t, func(o *server.Options) {
		p := o.Partitions["main"]
		gs = &gatedStorage{Storage: p.Storage, entered: make(chan struct{}, 1), gate: make(chan struct{})}
		p.Storage = gs
		o.Partitions["main"] = p
	})
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := a.NewOids(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		txn, err := a.Begin(ctx, storage.TxMeta{User: "gated"})
		if err != nil {
			done <- err
			return
		}
		_ = txn.Store(ctx, storage.Record{Oid: oids[0], Data: []byte("gone")})
		_, err = storage.CommitOnePhase(ctx, txn)
		done <- err
	}()
	select {
	case <-gs.entered:
	case <-ctx.Done():
		t.Fatal("commit never reached the backend")
	}
	a.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("commit succeeded on a closed client")
		}
	case <-ctx.Done():
		t.Fatal("commit did not return after Close")
	}
	close(gs.gate)
	// The lock is free and the abandoned commit went through (it had
	// started in the backend): b's commit based on it succeeds.
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var r storage.Record
	for i := 0; i < 200; i++ {
		if r, err = b.Load(lctx, oids[0]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || string(r.Data) != "gone" {
		t.Fatalf("abandoned commit: load %q, %v", r.Data, err)
	}
	if _, err := commitOne(lctx, b, storage.Record{Oid: oids[0], Serial: r.Serial, Data: []byte("next")}); err != nil {
		t.Fatalf("commit after the abandoned one: %v", err)
	}
}

// lyingStorage makes Finish of user "lying" commit and then report an
// error: the outcome the server sees is unknown.
type lyingStorage struct{ storage.Storage }

func (s lyingStorage) Begin(ctx context.Context, m storage.TxMeta) (storage.Txn, error) {
	t, err := s.Storage.Begin(ctx, m)
	if err != nil || m.User != "lying" {
		return t, err
	}
	return lyingTxn{t}, nil
}

type lyingTxn struct{ storage.Txn }

func (t lyingTxn) Finish(ctx context.Context) (storage.Tid, error) {
	if _, err := t.Txn.Finish(ctx); err != nil {
		return 0, err
	}
	return 0, errors.New("disk said maybe")
}

// TestCommitOnePhaseUnknownOutcomeResetsCaches: a Commit whose backend
// finish reports an error (it may have committed) is not a vote failure;
// the server resets every client's cache, so none keeps serving the old
// revision, and the commit lock is free.
func TestCommitOnePhaseUnknownOutcomeResetsCaches(t *testing.T) {
	ts := startServer(t, func(o *server.Options) {
		p := o.Partitions["main"]
		p.Storage = lyingStorage{p.Storage}
		o.Partitions["main"] = p
	})
	a := openClient(t, ts.addr, nil)
	b := openClient(t, ts.addr, nil)
	ctx := ctxT(t)
	oids, err := a.NewOids(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := commitOne(ctx, a, storage.Record{Oid: oids[0], Data: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitForTid(ctx, t1); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Load(ctx, oids[0]); err != nil || string(r.Data) != "v1" {
		t.Fatalf("b loads %q, %v", r.Data, err)
	}
	txn, _ := a.Begin(ctx, storage.TxMeta{User: "lying"})
	_ = txn.Store(ctx, storage.Record{Oid: oids[0], Serial: t1, Data: []byte("v2")})
	_, err = storage.CommitOnePhase(ctx, txn)
	if err == nil || storage.IsVoteFailure(err) {
		t.Fatalf("commit with a failing finish: %v, want an unknown-outcome error", err)
	}
	_ = txn.Abort(ctx)
	// b's cache is reset: it reads what the backend holds (v2).
	var r storage.Record
	for i := 0; i < 200; i++ {
		if r, err = b.Load(ctx, oids[0]); err == nil && string(r.Data) == "v2" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || string(r.Data) != "v2" {
		t.Fatalf("after an unknown outcome b still loads %q, %v", r.Data, err)
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := commitOne(lctx, b, storage.Record{Oid: oids[0], Serial: r.Serial, Data: []byte("v3")}); err != nil {
		t.Fatalf("commit after the unknown outcome: %v", err)
	}
}

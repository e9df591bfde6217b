package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/zhostdb/zhost/host/storage"
)

// maxMergeRounds bounds how often one partition's vote is retried after
// merging conflicts, before the conflict goes back to Update. A round is
// cheap (one load and one vote); on a hot object every concurrent
// committer may win a round before this one does.
const maxMergeRounds = 32

// write is one record a commit stores.
type write struct {
	e      *entry
	serial storage.Tid // the serial the record is based on
	data   []byte
	refs   []storage.Oid
}

// partCommit is the part of a commit that goes to one partition.
type partCommit struct {
	p      *partition
	writes []*write
	txn    storage.Txn
	// onePhase: the partition is the commit's only one, so it votes and
	// finishes in one step (storage.CommitOnePhase); tid is then set by
	// vote.
	onePhase bool
	tid      storage.Tid
}

// Commit writes the transaction's changes: every created object, every
// object replaced by Put, and every loaded object whose encoding changed.
// Changes to several partitions (main tree and mounts) commit atomically
// with two-phase commit: all partitions vote (in a fixed order, so
// concurrent commits cannot deadlock), then all finish; if any vote fails
// every partition aborts. Changes to one partition only (the common case)
// commit in one phase (storage.CommitOnePhase). A conflicting object whose type implements
// Merger is merged with the committed state and stored again; otherwise
// Commit returns an error matching storage.ErrConflict (Update retries
// it). It returns the tid of the main partition's commit (or, when only
// mounted partitions changed, of the first of them), and storage.ZeroTid
// when nothing changed. The Tx is finished afterwards, whatever the
// outcome.
//
// Once every partition voted, Finish runs on all of them even if ctx
// ends meanwhile. Finish failing on a later partition after an earlier
// one finished (a disk failure after a successful vote) leaves the
// earlier commit in place; the error says so.
func (tx *Tx) Commit(ctx context.Context) (storage.Tid, error) {
	if tx.done {
		return storage.ZeroTid, ErrTxDone
	}
	if tx.readOnly {
		tx.done = true
		return storage.ZeroTid, fmt.Errorf("commit: %w", ErrReadOnlyTx)
	}
	tx.done = true
	byPart := map[*partition]*partCommit{}
	for _, e := range tx.order {
		data, refs, err := encodeObject(e.obj)
		if err != nil {
			return storage.ZeroTid, fmt.Errorf("commit %s: %w", e.path, err)
		}
		if !e.created && !e.replaced && !e.current && bytes.Equal(data, e.baseData) {
			continue
		}
		pc := byPart[e.part]
		if pc == nil {
			pc = &partCommit{p: e.part}
			byPart[e.part] = pc
		}
		pc.writes = append(pc.writes, &write{e: e, serial: e.serial, data: data, refs: refs})
	}
	if len(byPart) == 0 {
		return storage.ZeroTid, nil
	}
	parts := make([]*partCommit, 0, len(byPart))
	for _, pc := range byPart {
		parts = append(parts, pc)
	}
	// The main partition first, then by (server, name): a global order.
	sort.Slice(parts, func(i, j int) bool {
		a, b := parts[i].p, parts[j].p
		if (a == tx.db.main) != (b == tx.db.main) {
			return a == tx.db.main
		}
		if a.server != b.server {
			return a.server < b.server
		}
		return a.name < b.name
	})

	abortAll := func() {
		actx := context.WithoutCancel(ctx)
		for _, pc := range parts {
			if pc.txn != nil {
				if err := pc.txn.Abort(actx); err != nil {
					tx.db.log.Warn("abort after failed commit", "partition", pc.p.name, "error", err)
				}
				pc.txn = nil
			}
		}
	}
	if len(parts) == 1 {
		// One resource manager: no two phases needed. One Commit request
		// votes and finishes (one round trip and one plugin call instead
		// of two each).
		pc := parts[0]
		pc.onePhase = true
		if err := tx.vote(ctx, pc); err != nil {
			return storage.ZeroTid, err
		}
		tx.db.commits.Add(1)
		tx.tids = map[*partition]storage.Tid{pc.p: pc.tid}
		return pc.tid, nil
	}
	for _, pc := range parts {
		if err := tx.vote(ctx, pc); err != nil {
			abortAll()
			return storage.ZeroTid, err
		}
	}
	// Every partition voted: the commit is decided. Finishing must not
	// depend on the caller's context any more (a client hanging up
	// between two partitions' Finish would leave the first committed
	// and the second not).
	fctx := context.WithoutCancel(ctx)
	var tid storage.Tid
	var finished []string
	tids := make(map[*partition]storage.Tid, len(parts))
	for _, pc := range parts {
		t, err := pc.txn.Finish(fctx)
		if err != nil {
			pc.txn = nil
			abortAll()
			if len(finished) > 0 {
				tx.db.log.Error("commit finished on some partitions only", "finished", finished, "failed", pc.p.name, "error", err)
				return storage.ZeroTid, fmt.Errorf("commit: finish partition %q failed after %v finished: %w", pc.p.name, finished, err)
			}
			return storage.ZeroTid, fmt.Errorf("commit: finish partition %q: %w", pc.p.name, err)
		}
		pc.txn = nil
		finished = append(finished, pc.p.name)
		tids[pc.p] = t
		if tid == storage.ZeroTid {
			tid = t
		}
	}
	tx.db.commits.Add(1)
	tx.tids = tids
	return tid, nil
}

// CommitTid returns, after a successful Commit, the tid of the commit in
// the partition of obj (an object of this transaction): the serial obj has
// now if the commit wrote it. Commit returns one tid only (the main
// partition's), which is not the serial of an object in a mounted
// partition. ZeroTid before a successful Commit, or when the commit wrote
// nothing in obj's partition.
func (tx *Tx) CommitTid(obj Object) storage.Tid {
	if isNil(obj) || obj.persistent().e == nil || obj.persistent().e.tx != tx {
		return storage.ZeroTid
	}
	return tx.tids[obj.persistent().e.part]
}

// vote stores one partition's writes and votes, merging conflicts and
// voting again up to maxMergeRounds times. On success pc.txn holds the
// voted transaction, or, when pc.onePhase, the transaction is committed
// and pc.tid is its tid.
func (tx *Tx) vote(ctx context.Context, pc *partCommit) error {
	p := pc.p
	byOid := make(map[storage.Oid]*write, len(pc.writes))
	for _, w := range pc.writes {
		byOid[w.e.oid] = w
	}
	for round := 0; ; round++ {
		txn, err := p.st.Begin(ctx, tx.meta)
		if err != nil {
			return fmt.Errorf("commit: begin in partition %q: %w", p.name, err)
		}
		for _, w := range pc.writes {
			rec := storage.Record{Oid: w.e.oid, Serial: w.serial, Data: w.data, Refs: w.refs}
			if err = txn.Store(ctx, rec); err != nil {
				_ = txn.Abort(context.WithoutCancel(ctx))
				return fmt.Errorf("commit: store %s (oid %s in %q): %w", w.e.path, w.e.oid, p.name, err)
			}
		}
		if pc.onePhase {
			var tid storage.Tid
			tid, err = storage.CommitOnePhase(ctx, txn)
			if err == nil {
				pc.tid = tid
				return nil
			}
			_ = txn.Abort(context.WithoutCancel(ctx))
			if !storage.IsVoteFailure(err) {
				return fmt.Errorf("commit in partition %q: %w", p.name, err)
			}
		} else {
			err = txn.Vote(ctx)
			if err == nil {
				pc.txn = txn
				return nil
			}
			_ = txn.Abort(context.WithoutCancel(ctx))
		}
		var ce *storage.ConflictError
		if !errors.As(err, &ce) {
			return fmt.Errorf("commit: vote in partition %q: %w", p.name, err)
		}
		tx.db.conflicts.Add(1)
		if round >= maxMergeRounds {
			return fmt.Errorf("commit in partition %q: still conflicting after %d merges: %w", p.name, round, err)
		}
		for _, c := range ce.Conflicts {
			w := byOid[c.Oid]
			if w == nil {
				return fmt.Errorf("commit in partition %q: conflict on oid %s not stored: %w", p.name, c.Oid, err)
			}
			if w.e.replaced {
				// Put replaced the object: the new state is not a change
				// relative to the old one, so it is never merged as one.
				return fmt.Errorf("commit %s (oid %s in %q): replaced while changed concurrently: %w", w.e.path, w.e.oid, p.name, storage.ErrConflict)
			}
			if err := tx.merge(ctx, p, w); err != nil {
				return err
			}
		}
	}
}

// merge resolves one conflicting write against the committed state.
func (tx *Tx) merge(ctx context.Context, p *partition, w *write) error {
	e := w.e
	if e.current {
		return fmt.Errorf("commit %s (oid %s in %q): changed after this transaction read it: %w", e.path, e.oid, p.name, storage.ErrConflict)
	}
	m, ok := e.obj.(Merger)
	if !ok {
		return fmt.Errorf("commit %s (a %s, oid %s in %q): changed concurrently: %w", e.path, e.obj.TypeName(), e.oid, p.name, storage.ErrConflict)
	}
	cur, err := p.st.Load(ctx, e.oid)
	if err != nil {
		return fmt.Errorf("commit %s: load committed state for merge: %w", e.path, err)
	}
	committed, ok := tx.db.cache.get(p.id, e.oid, cur.Serial)
	if !ok {
		if committed, err = decodeObject(cur.Data); err != nil {
			return fmt.Errorf("commit %s: decode committed state for merge: %w", e.path, err)
		}
	}
	merged, err := callMerge(m, e.base, committed)
	if err != nil {
		return fmt.Errorf("commit %s (oid %s in %q): %w", e.path, e.oid, p.name, err)
	}
	if merged == nil || merged.TypeName() == "" {
		return fmt.Errorf("commit %s: merge returned no object: %w", e.path, storage.ErrConflict)
	}
	data, refs, err := encodeObject(merged)
	if err != nil {
		return fmt.Errorf("commit %s: encode merged state: %w", e.path, err)
	}
	w.serial, w.data, w.refs = cur.Serial, data, refs
	tx.db.merges.Add(1)
	return nil
}

// callMerge runs a type's Merge, turning a panic in it (a bug in a
// registered type) into an error rather than taking the node down.
func callMerge(m Merger, old, committed Object) (merged Object, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("merge of a %T panicked: %v", m, r)
		}
	}()
	return m.Merge(old, committed)
}

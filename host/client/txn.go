package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// txn buffers its stores and sends the whole transaction with Vote, so a
// commit costs two round trips (Vote, Finish) whatever its size, or one
// (Commit) when it is the only resource manager.
type txn struct {
	c       *Client
	id      uint32
	meta    storage.TxMeta
	records []storage.Record
	arena   []byte
	state   txnPhase
	link    *link
	handle  uint32
}

type txnPhase int

const (
	phaseOpen txnPhase = iota
	phaseVoted
	phaseFailed // vote failed: only Abort is allowed
	phaseDone
)

// Begin starts a transaction. Nothing is sent until Vote.
func (c *Client) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	if c.closed.Load() {
		return nil, storage.ErrClosed
	}
	if c.caps.ReadOnly {
		return nil, fmt.Errorf("begin on partition %q: %w", c.partition, storage.ErrReadOnly)
	}
	return &txn{c: c, id: c.nextTxn.Add(1), meta: meta}, nil
}

// Store buffers a record (a copy: the caller may reuse its buffers).
func (t *txn) Store(ctx context.Context, rec storage.Record) error {
	if t.state != phaseOpen {
		return fmt.Errorf("store: transaction %s: %w", t.stateText(), storage.ErrClosed)
	}
	if t.c.closed.Load() {
		return storage.ErrClosed
	}
	if rec.Data == nil {
		return fmt.Errorf("store %s: nil data: %w", rec.Oid, storage.ErrInvalid)
	}
	// Copy into one growing buffer: one allocation per many records.
	// An oid stored twice is sent twice; the server, the backend and the
	// cache all keep the last, as the contract says.
	if cap(t.arena)-len(t.arena) < len(rec.Data) {
		t.arena = make([]byte, 0, max(64<<10, len(rec.Data)))
	}
	start := len(t.arena)
	t.arena = append(t.arena, rec.Data...)
	rec.Data = t.arena[start:len(t.arena):len(t.arena)]
	if rec.Refs != nil {
		rec.Refs = slices.Clone(rec.Refs)
	}
	t.records = append(t.records, rec)
	return nil
}

func (t *txn) stateText() string {
	switch t.state {
	case phaseVoted:
		return "already voted"
	case phaseFailed:
		return "vote failed"
	case phaseDone:
		return "finished or aborted"
	}
	return "open"
}

// Vote sends the transaction; the server stores it and votes, holding
// the partition's commit lock until Finish or Abort.
func (t *txn) Vote(ctx context.Context) error {
	if t.state != phaseOpen {
		return fmt.Errorf("vote: transaction %s: %w", t.stateText(), storage.ErrClosed)
	}
	c := t.c
	if c.closed.Load() {
		return storage.ErrClosed
	}
	l, h, err := c.current(ctx)
	if err != nil {
		t.state = phaseFailed
		return fmt.Errorf("vote: %w", err)
	}
	var wait uint32
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		wait = uint32(min(ms, 1<<31))
	}
	t.link, t.handle = l, h
	c.mu.Lock()
	c.voted[t] = struct{}{}
	c.mu.Unlock()
	_, err = l.call(ctx, &wire.Vote{Handle: h, Txn: t.id, LockWaitMillis: wait, Meta: t.meta, Records: t.records}, nil)
	if err != nil {
		t.state = phaseFailed
		if ctx.Err() != nil {
			// The vote may still succeed on the server: abort it there.
			t.abortRemote(context.WithoutCancel(ctx))
			if !errors.Is(err, storage.ErrCommitLockTimeout) {
				err = fmt.Errorf("%w: %w", storage.ErrCommitLockTimeout, err)
			}
		}
		c.mu.Lock()
		delete(c.voted, t)
		c.mu.Unlock()
		return fmt.Errorf("vote: %w", err)
	}
	t.state = phaseVoted
	return nil
}

// Finish commits the voted transaction and returns its tid. The cache
// and LastTid reflect it before Finish returns.
func (t *txn) Finish(ctx context.Context) (storage.Tid, error) {
	if t.state != phaseVoted {
		return 0, fmt.Errorf("finish: transaction %s: %w", t.stateText(), storage.ErrClosed)
	}
	t.state = phaseDone
	c := t.c
	if c.closed.Load() {
		return 0, fmt.Errorf("finish: %w", storage.ErrClosed)
	}
	defer func() {
		c.mu.Lock()
		delete(c.voted, t)
		c.mu.Unlock()
	}()
	records := t.records
	m, err := t.link.call(ctx, &wire.Finish{Handle: t.handle, Txn: t.id}, func(m wire.Message, err error) {
		if err != nil {
			return
		}
		switch r := m.(type) {
		case *wire.TidReply:
			c.applyCommit(r.Tid, records, nil)
		case *wire.Committed:
			c.applyCommit(r.Tid, records, r.Collected)
		}
	})
	if err != nil {
		if errors.Is(err, ErrDisconnected) {
			return 0, fmt.Errorf("finish: connection lost, the transaction's outcome is unknown: %w", err)
		}
		return 0, fmt.Errorf("finish: %w", err)
	}
	return commitTid("finish", m)
}

// Commit sends the transaction as one Commit request: the server
// stores, votes and finishes it in one step (one round trip instead of
// Vote's and Finish's). The cache and LastTid reflect it before Commit
// returns, exactly as after Finish. A conflict is a *storage.ConflictError
// naming every conflicting oid, and the transaction is over. A lost
// connection or an ended ctx leaves the outcome unknown (the error says
// so): the server finishes a commit it started whatever the client does.
func (t *txn) Commit(ctx context.Context) (storage.Tid, error) {
	if t.state != phaseOpen {
		return 0, fmt.Errorf("commit: transaction %s: %w", t.stateText(), storage.ErrClosed)
	}
	t.state = phaseDone
	c := t.c
	if c.closed.Load() {
		return 0, fmt.Errorf("commit: %w", storage.ErrClosed)
	}
	l, h, err := c.current(ctx)
	if err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	var wait uint32
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms < 1 {
			ms = 1
		}
		wait = uint32(min(ms, 1<<31))
	}
	records := t.records
	m, err := l.call(ctx, &wire.Commit{Handle: h, Txn: t.id, LockWaitMillis: wait, Meta: t.meta, Records: records}, func(m wire.Message, err error) {
		if err != nil {
			return
		}
		switch r := m.(type) {
		case *wire.TidReply:
			c.applyCommit(r.Tid, records, nil)
		case *wire.Committed:
			c.applyCommit(r.Tid, records, r.Collected)
		}
	})
	t.arena = nil
	if err != nil {
		if errors.Is(err, ErrDisconnected) {
			return 0, fmt.Errorf("commit: connection lost, the transaction's outcome is unknown: %w", err)
		}
		if ctx.Err() != nil && !storage.IsVoteFailure(err) {
			return 0, fmt.Errorf("commit: gave up waiting, the transaction's outcome is unknown: %w", err)
		}
		return 0, fmt.Errorf("commit: %w", err)
	}
	return commitTid("commit", m)
}

func (t *txn) abortRemote(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, t.c.conn.opts.WaitTimeout)
	defer cancel()
	t.link.call(ctx, &wire.Abort{Handle: t.handle, Txn: t.id}, nil)
}

// Abort drops the transaction; if it was voted the server releases the
// commit lock.
func (t *txn) Abort(ctx context.Context) error {
	prev := t.state
	if prev == phaseDone {
		return nil
	}
	t.state = phaseDone
	if prev == phaseVoted {
		t.abortRemote(ctx)
		t.c.mu.Lock()
		delete(t.c.voted, t)
		t.c.mu.Unlock()
	}
	t.records, t.arena = nil, nil
	return nil
}

// commitTid is the tid of a Finish or Commit reply: Tid, or Committed when
// the commit collected objects.
func commitTid(op string, m wire.Message) (storage.Tid, error) {
	switch r := m.(type) {
	case *wire.TidReply:
		return r.Tid, nil
	case *wire.Committed:
		return r.Tid, nil
	}
	return 0, fmt.Errorf("%s: server answered %s: %w", op, m.Kind(), wire.ErrProtocol)
}

var _ storage.OnePhaseTxn = (*txn)(nil)

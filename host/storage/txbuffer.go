package storage

import (
	"context"
	"fmt"
	"slices"
)

// TxPhase is where a backend's transaction is in two-phase commit. The
// built-in backends share it so that every one answers an out-of-order
// call (Store after Vote, Finish before Vote, anything after Finish) with
// the same sentinel: ErrClosed once the transaction is over, ErrInvalid
// for a call the phase does not allow.
type TxPhase int

// The phases, in order. TxFailed is a vote that failed: only Abort is
// allowed then.
const (
	TxOpen TxPhase = iota
	TxVoted
	TxFailed
	TxDone
)

// CheckStore returns the error a Store in phase p must return, or nil.
// backend prefixes the message ("packless").
func (p TxPhase) CheckStore(backend string, oid Oid) error {
	switch p {
	case TxDone:
		return fmt.Errorf("%s: store %s: transaction is over: %w", backend, oid, ErrClosed)
	case TxVoted, TxFailed:
		return fmt.Errorf("%s: store %s after vote: %w", backend, oid, ErrInvalid)
	}
	return nil
}

// CheckVote returns the error a Vote in phase p must return, or nil.
func (p TxPhase) CheckVote(backend string) error {
	switch p {
	case TxDone:
		return fmt.Errorf("%s: vote: transaction is over: %w", backend, ErrClosed)
	case TxVoted:
		return fmt.Errorf("%s: vote twice: %w", backend, ErrInvalid)
	case TxFailed:
		return fmt.Errorf("%s: vote after a failed vote: %w", backend, ErrInvalid)
	}
	return nil
}

// CheckFinish returns the error a Finish in phase p must return, or nil.
func (p TxPhase) CheckFinish(backend string) error {
	switch p {
	case TxDone:
		return fmt.Errorf("%s: finish: transaction is over: %w", backend, ErrClosed)
	case TxOpen:
		return fmt.Errorf("%s: finish before vote: %w", backend, ErrInvalid)
	case TxFailed:
		return fmt.Errorf("%s: finish after a failed vote: %w", backend, ErrInvalid)
	}
	return nil
}

// StoreBuffer collects the records of one transaction as Txn.Store
// receives them: each is checked and copied (the caller may reuse its
// slices), and a second Store of an oid replaces the first in place, so
// Records keeps first-store order with the last revision of each oid. It
// is not safe for concurrent use; a Txn guards it with its own lock.
type StoreBuffer struct {
	recs  []Record
	index map[Oid]int
}

// Add checks rec (ctx still live, Data not nil) and buffers a copy.
// backend prefixes error messages.
func (b *StoreBuffer) Add(ctx context.Context, backend string, rec Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: store %s: %w", backend, rec.Oid, err)
	}
	if rec.Data == nil {
		return fmt.Errorf("%s: store %s: nil data: %w", backend, rec.Oid, ErrInvalid)
	}
	rec.Data = slices.Clone(rec.Data)
	rec.Refs = slices.Clone(rec.Refs)
	if i, ok := b.index[rec.Oid]; ok {
		b.recs[i] = rec
		return nil
	}
	if b.index == nil {
		b.index = make(map[Oid]int)
	}
	b.index[rec.Oid] = len(b.recs)
	b.recs = append(b.recs, rec)
	return nil
}

// Records returns the buffered records in first-store order. The slice
// is the buffer's own; do not modify it.
func (b *StoreBuffer) Records() []Record { return b.recs }

// Len returns the number of distinct oids stored.
func (b *StoreBuffer) Len() int { return len(b.recs) }

// Reset drops every record, releasing memory.
func (b *StoreBuffer) Reset() { b.recs, b.index = nil, nil }

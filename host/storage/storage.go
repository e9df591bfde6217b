package storage

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Oid is a 64-bit object id, unique inside one storage. RootOid (0) is the
// root object; NewOids never returns it.
type Oid uint64

// RootOid is the oid of the root object. It is the starting point of the
// reachability walk done by pack and by the packless garbage collector.
const RootOid Oid = 0

// String renders an oid as 0x-prefixed hex, the form used in logs and errors.
func (o Oid) String() string { return "0x" + strconv.FormatUint(uint64(o), 16) }

// Tid is a 64-bit transaction id. Tids strictly increase per storage and
// are derived from the wall clock: a tid is the commit time in nanoseconds
// since the Unix epoch, bumped by one where needed to stay increasing.
type Tid uint64

// ZeroTid is "no transaction": the serial of an object that does not exist
// yet, and the LastTid of an empty storage.
const ZeroTid Tid = 0

// Time returns the wall-clock time a tid was derived from.
func (t Tid) Time() time.Time { return time.Unix(0, int64(t)).UTC() }

// String renders a tid as 16 hex digits, the form used in logs and errors.
func (t Tid) String() string { return fmt.Sprintf("%016x", uint64(t)) }

// TidAt returns the smallest tid that is not before time t. Pack and
// LoadBefore take tids; TidAt converts an operator's point in time.
func TidAt(t time.Time) Tid {
	n := t.UnixNano()
	if n < 0 {
		return ZeroTid
	}
	return Tid(n)
}

// NextTid returns a tid for a transaction committed now that is strictly
// greater than last. It never goes backwards, even if the clock does; a
// backend calls it with the newest tid it has ever written (read back from
// disk at open) so that a restart under a clock that went back still
// yields increasing tids.
func NextTid(last Tid, now time.Time) Tid {
	t := TidAt(now)
	if t <= last {
		return last + 1
	}
	return t
}

// Record is one object revision: the bytes of the object, opaque to the
// storage, plus the oids the object references. References are what pack
// and the packless collector follow from the root; a record that omits a
// reference lets the collector free an object that is still used.
type Record struct {
	Oid Oid
	// Serial is the tid that wrote this revision. On Store it is instead
	// the serial the writer based its change on (ZeroTid for a new
	// object); a mismatch with the current serial is a conflict.
	Serial Tid
	// Data is the object's bytes. Nil Data in a loaded record never
	// happens: an object whose creation was undone is reported as
	// ErrNotFound. Nil Data in an iterated record marks such an undone
	// creation.
	Data []byte
	// Refs lists the oids this revision references (no duplicates needed,
	// order irrelevant).
	Refs []Oid
}

// Size is the number of bytes a record accounts for in caches.
func (r Record) Size() int { return len(r.Data) + 8*len(r.Refs) + 16 }

// TxMeta is the metadata a committer attaches to a transaction.
type TxMeta struct {
	User        string
	Description string
	// Extension carries free-form metadata (for example the node that
	// committed). Nil and empty are the same.
	Extension map[string]string
}

// TxInfo describes one committed transaction.
type TxInfo struct {
	Tid Tid
	TxMeta
	// Oids lists the objects the transaction wrote, in store order.
	Oids []Oid
}

// Revision describes one revision of an object in its history.
type Revision struct {
	Serial Tid
	Size   int
	TxMeta
}

// Capabilities says which optional parts of the contract a backend
// supports. A method whose capability is false returns ErrNotSupported.
type Capabilities struct {
	// History: LoadBefore for any tid, History and Iterate over past
	// transactions. Without it LoadBefore works only when the current
	// revision is already older than the given tid, and Iterate yields
	// no transactions older than the backend's current state.
	History bool
	// Undo: Undo and UndoLog.
	Undo bool
	// Pack: Pack. Backends without history need no packing and report
	// false.
	Pack bool
	// ReadOnly: every write (Begin, Undo, Pack, NewOids) returns
	// ErrReadOnly.
	ReadOnly bool
}

// Sentinel errors. Backends wrap them with context; callers test them with
// errors.Is. Any error a backend returns across the plugin or network
// boundary keeps its sentinel identity.
var (
	// ErrNotFound: the oid has no revision (never stored, creation
	// undone, collected by pack or by the packless collector), or none
	// before the given tid.
	ErrNotFound = errors.New("object not found")
	// ErrConflict: a stored record named a serial that is not the
	// object's current serial. Errors that match it are *ConflictError.
	ErrConflict = errors.New("conflict")
	// ErrReadOnly: a write to a read-only storage or partition.
	ErrReadOnly = errors.New("storage is read-only")
	// ErrNotSupported: the backend lacks the capability the call needs.
	ErrNotSupported = errors.New("not supported by this storage")
	// ErrClosed: the storage was closed, or the transaction was already
	// finished or aborted.
	ErrClosed = errors.New("storage closed")
	// ErrUndoConflict: undo cannot restore a revision because a later
	// transaction changed the same object.
	ErrUndoConflict = errors.New("undo conflict")
	// ErrCommitLockTimeout: Vote could not take the commit lock before
	// its context ended.
	ErrCommitLockTimeout = errors.New("timed out waiting for the commit lock")
	// ErrInvalid: the call's arguments are malformed (a record for the
	// root with a nil Data, a zero-sized oid batch, a tid in the future
	// for pack, ...).
	ErrInvalid = errors.New("invalid argument")
)

// ConflictError reports every conflicting oid of one vote at once.
type ConflictError struct {
	Conflicts []Conflict
}

// Conflict is one object whose stored serial did not match.
type Conflict struct {
	Oid Oid
	// Expected is the serial the writer based its change on; Actual is
	// the object's current serial.
	Expected, Actual Tid
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	b.WriteString("conflict on ")
	for i, c := range e.Conflicts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "oid %s (based on %s, current %s)", c.Oid, c.Expected, c.Actual)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrConflict) true for a *ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Oids returns the conflicting oids, sorted.
func (e *ConflictError) Oids() []Oid {
	out := make([]Oid, len(e.Conflicts))
	for i, c := range e.Conflicts {
		out[i] = c.Oid
	}
	slices.Sort(out)
	return out
}

// Loader reads records. All methods are safe for concurrent use, also
// while commits, undo and pack run.
type Loader interface {
	// Load returns the current revision of oid, or ErrNotFound.
	Load(ctx context.Context, oid Oid) (Record, error)
	// LoadBefore returns the revision of oid that was current just before
	// tid (its Serial < tid) and end, the serial of the revision that
	// replaced it (ZeroTid if it is still current). It returns
	// ErrNotFound if no revision existed before tid, and, on a backend
	// without History, ErrNotSupported if the current revision is not
	// older than tid. This is what gives each reader a consistent
	// snapshot (MVCC).
	LoadBefore(ctx context.Context, oid Oid, tid Tid) (rec Record, end Tid, err error)
}

// Committer writes records with two-phase commit. Safe for concurrent use;
// commits are serialized by the storage's commit lock, taken at Vote.
type Committer interface {
	// NewOids allocates n fresh oids (1 <= n <= 65536). Oids are never
	// reused, also across restarts, even if the transaction that used
	// them aborts.
	NewOids(ctx context.Context, n int) ([]Oid, error)
	// Begin starts a transaction. It does not take the commit lock, so
	// any number of transactions may be open. ErrReadOnly on a read-only
	// storage.
	Begin(ctx context.Context, meta TxMeta) (Txn, error)
	// LastTid returns the tid of the newest committed transaction
	// (ZeroTid for an empty storage).
	LastTid(ctx context.Context) (Tid, error)
}

// Txn is one transaction in two-phase commit. A Txn is used by one
// goroutine at a time. The sequence is Store* Vote Finish, or Abort at any
// point before Finish returns. After Finish or Abort every method returns
// ErrClosed; Abort after Finish or Abort is a no-op returning nil.
type Txn interface {
	// Store adds a revision: rec.Serial names the serial it is based on
	// (ZeroTid for an object created in this transaction). Storing an oid
	// twice in one transaction keeps the last. Conflicts are reported by
	// Vote, not here. ErrInvalid for a nil Data.
	Store(ctx context.Context, rec Record) error
	// Vote takes the commit lock (waiting until ctx ends, then
	// ErrCommitLockTimeout), checks every stored serial against the
	// current one and returns a *ConflictError naming all conflicting
	// oids, writes the data, and holds the lock until Finish or Abort. A
	// transaction whose vote failed can only be aborted. A successful
	// vote means Finish will succeed unless the disk fails.
	Vote(ctx context.Context) error
	// Finish makes the transaction durable (as the sync policy says)
	// and visible, releases the commit lock and returns its tid. It
	// returns only once Load sees the new revisions.
	Finish(ctx context.Context) (Tid, error)
	// Abort discards the transaction and releases the commit lock if
	// held. It leaves no trace in the storage (oids handed out by
	// NewOids stay used).
	Abort(ctx context.Context) error
}

// CollectingTxn is an optional interface of a Txn whose backend frees
// unreachable objects in the commit itself (packless collects an object
// in the very commit that removes the last reference to it). A caller that
// caches records (the server, clients) must treat collected oids as
// changed by the commit, exactly like the stored ones: after the commit a
// Load of a collected oid returns ErrNotFound.
//
// Collected returns, after a successful Finish, the oids that commit
// removed, in no particular order (nil if none, or if Finish has not
// succeeded). It may name an oid the same transaction stored (a new
// object nothing references is garbage at once): the collection wins, the
// oid is gone. It is safe to call from the goroutine that called Finish, any number
// of times; it does no I/O and cannot fail.
type CollectingTxn interface {
	Txn
	Collected() []Oid
}

// OnePhaseTxn is an optional interface of a Txn that can vote and finish
// in one step. It is for a transaction that is the only resource manager
// of its commit (it touches one storage): a remote backend then saves a
// round trip.
//
// Commit is Vote then Finish as one step, after the Stores. On a conflict
// it returns a *ConflictError like Vote; on any error from the vote part
// the transaction is over (aborted, the commit lock released). An error
// that is not a vote failure (ErrConflict, ErrCommitLockTimeout,
// ErrInvalid, ErrReadOnly) may come from the finish part, and the outcome
// is then unknown, as for a failing Finish. After Commit every method
// returns ErrClosed except Abort (a no-op, or a release of the lock if the
// outcome is unknown), and Collected of a CollectingTxn works as after
// Finish. Same concurrency contract as Txn.
type OnePhaseTxn interface {
	Txn
	Commit(ctx context.Context) (Tid, error)
}

// CommitOnePhase votes and finishes txn as one step: with Commit when txn
// is a OnePhaseTxn, else with Vote then Finish (aborting txn when the vote
// fails). The error contract is OnePhaseTxn.Commit's: a vote failure
// leaves nothing behind, any other error leaves the outcome unknown.
func CommitOnePhase(ctx context.Context, txn Txn) (Tid, error) {
	if o, ok := txn.(OnePhaseTxn); ok {
		return o.Commit(ctx)
	}
	if err := txn.Vote(ctx); err != nil {
		_ = txn.Abort(context.WithoutCancel(ctx))
		return ZeroTid, err
	}
	return txn.Finish(context.WithoutCancel(ctx))
}

// IsVoteFailure reports whether err, returned by OnePhaseTxn.Commit or
// CommitOnePhase, certainly left nothing committed: a conflict, a commit
// lock timeout, or an invalid or read-only transaction.
func IsVoteFailure(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrCommitLockTimeout) ||
		errors.Is(err, ErrInvalid) || errors.Is(err, ErrReadOnly)
}

// Historian gives access to the past. Backends without
// Capabilities.History return ErrNotSupported from every method.
type Historian interface {
	// History returns up to max revisions of oid, newest first.
	History(ctx context.Context, oid Oid, max int) ([]Revision, error)
	// Iterate yields committed transactions with start <= tid < stop
	// (stop ZeroTid means no upper bound), oldest first, each with its
	// records. Stop early by breaking out of the loop. A backend without
	// history yields its current state as one synthetic transaction per
	// distinct serial, which is enough to copy it.
	Iterate(ctx context.Context, start, stop Tid) iter.Seq2[TxRecords, error]
}

// TxRecords is one transaction as Iterate yields it.
type TxRecords struct {
	TxInfo
	Records []Record
}

// Undoer undoes transactions. Backends without Capabilities.Undo return
// ErrNotSupported.
type Undoer interface {
	// UndoLog returns up to max undoable transactions, newest first.
	UndoLog(ctx context.Context, max int) ([]TxInfo, error)
	// Undo commits a new transaction that restores, for every object the
	// transaction tid wrote, the revision before it. It returns the new
	// tid and the oids it changed (what clients must invalidate), or
	// ErrUndoConflict if a later transaction changed one of them.
	Undo(ctx context.Context, tid Tid, meta TxMeta) (Tid, []Oid, error)
}

// Packer removes history. Backends without Capabilities.Pack return
// ErrNotSupported.
type Packer interface {
	// Pack drops every revision that was not current at tid and is not
	// needed by a reader at or after tid, and every object not reachable
	// from the root at tid. Loads and commits go on while it runs.
	// Progress, if non-nil, is called with done/total bytes (or
	// records) from time to time.
	Pack(ctx context.Context, tid Tid, progress func(done, total int64)) error
}

// Storage is the contract every backend implements: built-in, external
// plugin, and the network client. Methods a backend cannot support return
// ErrNotSupported as Capabilities says; none of them panics on any input.
type Storage interface {
	Loader
	Committer
	Historian
	Undoer
	Packer
	// Capabilities reports what this backend supports. It never changes
	// during the life of the storage.
	Capabilities() Capabilities
	// Close releases every resource. Open transactions are aborted. Calls
	// after Close return ErrClosed; Close twice returns nil.
	Close() error
}

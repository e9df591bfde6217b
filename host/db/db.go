package db

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zhostdb/zhost/host/storage"
)

// Options configure a DB. The zero value is usable: no mounts, a 32 MiB
// object cache, 10 attempts per Update.
type Options struct {
	// Logger receives the DB's logs (mount state changes, retries,
	// failed commits). Default: hclog.NewNullLogger().
	Logger hclog.Logger
	// CacheBytes bounds the decoded-object cache shared by all
	// transactions of the DB, in bytes of record data (the decoded form
	// is counted as twice the record). Default 32 MiB; negative disables
	// the cache.
	CacheBytes int64
	// MainPartition is the name of the partition st (given to Open)
	// serves, as shown by Persistent.Partition and MountStatus. A mount
	// whose target names this partition (and no Server) mounts a folder
	// of the main storage itself. Default "main".
	MainPartition string
	// Mounts are the mount points of the main tree (the config's mount
	// blocks, wired to their mount functions by the host layer).
	Mounts []Mount
	// OpenPartition connects to a mount's target partition. server is
	// the Target's Server ("" = the main server). The DB calls it at
	// most once per (server, partition) that succeeds, and Closes the
	// returned storage when the DB closes (return a wrapper with a no-op
	// Close to share a connection). Required when a mount targets any
	// partition other than MainPartition.
	OpenPartition func(ctx context.Context, partition, server string) (storage.Storage, error)
	// MaxAttempts bounds how many times Update runs its function when
	// commits conflict. Default 10.
	MaxAttempts int
	// RetryMin and RetryMax bound Update's exponential backoff between
	// attempts (with jitter). Defaults 1ms and 200ms.
	RetryMin, RetryMax time.Duration
	// MountRetryMin and MountRetryMax bound the backoff with which a
	// failed mount is tried again in the background. Defaults 500ms and
	// 1m.
	MountRetryMin, MountRetryMax time.Duration
	// MountTimeout bounds one attempt to resolve and bootstrap a mount.
	// Default 30s.
	MountTimeout time.Duration
	// Meta is attached to every transaction this DB commits (Tx.SetMeta
	// overrides it per transaction); for example Extension{"node": name}.
	Meta storage.TxMeta
}

// Mount is one mount point: the folder at Path in the main tree shows the
// contents of a folder in another partition.
type Mount struct {
	// Name identifies the mount in errors, logs and status (the config's
	// mount block label).
	Name string
	// Path is the absolute mount point in the main tree ("/session_data").
	// Its parent folders are created in the main tree if missing.
	Path string
	// Resolve is the mount function: it answers where the mounted folder
	// lives. It is called when the DB opens and again, with backoff,
	// until it and the bootstrap of the target folder succeed. It must
	// be safe to call from another goroutine.
	Resolve func(ctx context.Context) (Target, error)
}

// Target is a mount function's answer.
type Target struct {
	// Partition names the partition holding the mounted folder.
	Partition string
	// Folder is the folder's path inside that partition ("" or "/" for
	// the partition's root). It and its parents are created if missing.
	Folder string
	// Server is the address of another storage server serving the
	// partition; "" means the main one.
	Server string
}

// MountState is a mount's lifecycle state.
type MountState string

// Mount states.
const (
	// MountPending: not tried yet (only seen during Open).
	MountPending MountState = "pending"
	// MountReady: resolved; its folder exists; paths under it work.
	MountReady MountState = "ready"
	// MountFailed: the last attempt failed; paths under the mount answer
	// a *MountError; it is retried at NextRetry.
	MountFailed MountState = "failed"
)

// MountStatus is a snapshot of one mount for status pages.
type MountStatus struct {
	Name   string
	Path   string
	State  MountState
	Target Target // zero until the mount function answered
	// Err is the last failure ("" when ready).
	Err string
	// Attempts counts resolve attempts so far.
	Attempts int
	// Since is when the mount entered State.
	Since time.Time
	// NextRetry is when a failed mount is tried again (zero otherwise).
	NextRetry time.Time
}

// Stats are counters since Open, for status pages and benchmarks.
type Stats struct {
	Loads         uint64 `json:"loads"`          // objects loaded from storage into transactions
	CacheHits     uint64 `json:"cache_hits"`     // loads that found the decoded object cached
	CacheBytes    int64  `json:"cache_bytes"`    // bytes currently held by the object cache
	Commits       uint64 `json:"commits"`        // transactions that wrote something
	Conflicts     uint64 `json:"conflicts"`      // votes that reported a conflict
	Merges        uint64 `json:"merges"`         // conflicting objects resolved by merging
	Retries       uint64 `json:"retries"`        // Update attempts repeated after a conflict
	ReadConflicts uint64 `json:"read_conflicts"` // loads that failed as read conflicts
	Invalidated   uint64 `json:"invalidated"`    // cache entries dropped by invalidations
}

// DB is an open object database: a main partition plus mounted ones. All
// methods are safe for concurrent use; each Tx is used by one goroutine.
type DB struct {
	opts  Options
	log   hclog.Logger
	main  *partition
	cache *objectCache

	partsMu sync.Mutex
	parts   map[partKey]*partition
	nextPID uint32

	mounts  []*mountPoint          // longest path first
	mountAt map[string]*mountPoint // by mount point path

	stop   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	loads, hits, commits, conflicts, merges, retries, readConflicts, invalidated atomic.Uint64
}

type partKey struct{ server, name string }

// partition is one storage the DB reads and writes.
type partition struct {
	id      uint32
	name    string
	server  string
	st      storage.Storage
	owned   bool // Close it when the DB closes
	mount   *mountPoint
	unwatch func()

	oidMu sync.Mutex
	oids  []storage.Oid
}

// watcher is implemented by storages that push invalidations (the network
// client, host/client.Client). The DB uses it only to drop cache entries
// early; correctness never depends on it, because cache entries are keyed
// by serial. oids == nil means "everything may have changed".
type watcher interface {
	Watch(fn func(tid storage.Tid, oids []storage.Oid)) (cancel func())
}

// Open opens a database over st, the main partition (a network client or
// any backend directly). It creates the root folder (oid 0) if missing and
// the parent folders of every mount point, then tries every mount once:
// a mount that fails does not fail Open; it is reported by Mounts and
// retried in the background. st stays the caller's: Close does not close
// it.
func Open(ctx context.Context, st storage.Storage, opts Options) (*DB, error) {
	if st == nil {
		return nil, fmt.Errorf("open db: nil storage: %w", storage.ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 32 << 20
	}
	if opts.MainPartition == "" {
		opts.MainPartition = "main"
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Millisecond
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(200*time.Millisecond, opts.RetryMin)
	}
	if opts.MountRetryMin <= 0 {
		opts.MountRetryMin = 500 * time.Millisecond
	}
	if opts.MountRetryMax < opts.MountRetryMin {
		opts.MountRetryMax = max(time.Minute, opts.MountRetryMin)
	}
	if opts.MountTimeout <= 0 {
		opts.MountTimeout = 30 * time.Second
	}
	d := &DB{
		opts:    opts,
		log:     opts.Logger,
		cache:   newObjectCache(opts.CacheBytes),
		parts:   map[partKey]*partition{},
		stop:    make(chan struct{}),
		mountAt: map[string]*mountPoint{},
	}
	d.main = d.addPartition(partKey{name: opts.MainPartition}, st, false)

	seen := map[string]string{}
	for _, m := range opts.Mounts {
		comps, err := splitPath(m.Path)
		if err != nil || len(comps) == 0 {
			d.closeParts()
			return nil, fmt.Errorf("open db: mount %q: path %q: %w", m.Name, m.Path, ErrInvalidPath)
		}
		if m.Resolve == nil {
			d.closeParts()
			return nil, fmt.Errorf("open db: mount %q: nil Resolve: %w", m.Name, storage.ErrInvalid)
		}
		p := joinPath(comps)
		if other, dup := seen[p]; dup {
			d.closeParts()
			return nil, fmt.Errorf("open db: mount %q: path %s already used by mount %q: %w", m.Name, p, other, storage.ErrInvalid)
		}
		seen[p] = m.Name
		mp := &mountPoint{cfg: m, comps: comps, path: p, state: MountPending, since: time.Now()}
		d.mounts = append(d.mounts, mp)
		d.mountAt[p] = mp
	}
	sort.SliceStable(d.mounts, func(i, j int) bool { return len(d.mounts[i].comps) > len(d.mounts[j].comps) })

	if err := d.bootstrapMain(ctx); err != nil {
		d.closeParts()
		return nil, fmt.Errorf("open db: %w", err)
	}
	for _, m := range d.mounts {
		if err := d.tryMount(ctx, m); err != nil {
			d.scheduleRetry(m)
		}
	}
	return d, nil
}

// bootstrapMain creates the root folder and the parents of mount points.
func (d *DB) bootstrapMain(ctx context.Context) error {
	if d.main.st.Capabilities().ReadOnly {
		return nil
	}
	_, err := d.Update(ctx, func(tx *Tx) error {
		if _, err := tx.ensureRoot(ctx, d.main); err != nil {
			return err
		}
		for _, m := range d.mounts {
			if _, err := tx.mkdirAllIn(ctx, d.main, storage.RootOid, "", m.comps[:len(m.comps)-1], true); err != nil {
				return fmt.Errorf("create parent folders of mount %q: %w", m.cfg.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bootstrap root folder: %w", err)
	}
	return nil
}

func (d *DB) addPartition(k partKey, st storage.Storage, owned bool) *partition {
	d.partsMu.Lock()
	defer d.partsMu.Unlock()
	return d.addPartitionLocked(k, st, owned)
}

func (d *DB) addPartitionLocked(k partKey, st storage.Storage, owned bool) *partition {
	p := &partition{id: d.nextPID, name: k.name, server: k.server, st: st, owned: owned}
	d.nextPID++
	d.parts[k] = p
	if w, ok := st.(watcher); ok && d.cache != nil {
		p.unwatch = w.Watch(func(_ storage.Tid, oids []storage.Oid) {
			d.invalidated.Add(uint64(d.cache.invalidate(p.id, oids)))
		})
	}
	return p
}

// partitionFor returns the partition of a mount target, connecting to it
// if needed.
func (d *DB) partitionFor(ctx context.Context, t Target) (*partition, error) {
	k := partKey{server: t.Server, name: t.Partition}
	if t.Server == "" && t.Partition == d.opts.MainPartition {
		return d.main, nil
	}
	d.partsMu.Lock()
	p := d.parts[k]
	d.partsMu.Unlock()
	if p != nil {
		return p, nil
	}
	if d.opts.OpenPartition == nil {
		return nil, fmt.Errorf("partition %q: no OpenPartition configured: %w", t.Partition, storage.ErrNotSupported)
	}
	st, err := d.opts.OpenPartition(ctx, t.Partition, t.Server)
	if err != nil {
		return nil, fmt.Errorf("connect to partition: %w", err)
	}
	if st == nil {
		return nil, fmt.Errorf("open partition %q: OpenPartition returned nil: %w", t.Partition, storage.ErrInvalid)
	}
	d.partsMu.Lock()
	defer d.partsMu.Unlock()
	if q := d.parts[k]; q != nil { // lost a race with another mount
		_ = st.Close()
		return q, nil
	}
	if d.closed.Load() {
		_ = st.Close()
		return nil, fmt.Errorf("partition %q: %w", t.Partition, storage.ErrClosed)
	}
	return d.addPartitionLocked(k, st, true), nil
}

// Close stops mount retries, waits for them, and closes the storages
// OpenPartition returned. It does not close the main storage given to
// Open. Transactions still open fail on their next storage call. Close
// twice returns nil.
func (d *DB) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(d.stop)
	d.wg.Wait()
	return d.closeParts()
}

func (d *DB) closeParts() error {
	d.partsMu.Lock()
	defer d.partsMu.Unlock()
	var errs []error
	for k, p := range d.parts {
		if p.unwatch != nil {
			p.unwatch()
			p.unwatch = nil
		}
		if p.owned {
			if err := p.st.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close partition %q: %w", k.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Storage returns the main storage the DB was opened over.
func (d *DB) Storage() storage.Storage { return d.main.st }

// Begin starts a read-write transaction on a snapshot of the main
// partition taken now (mounted partitions are snapshotted at their first
// use in the transaction). The caller must end it with Commit or Abort.
// Prefer Update, which also retries on conflicts.
func (d *DB) Begin(ctx context.Context) (*Tx, error) { return d.begin(ctx, false) }

// BeginRead starts a read-only transaction; changes fail with
// ErrReadOnlyTx. End it with Abort. Prefer View.
func (d *DB) BeginRead(ctx context.Context) (*Tx, error) { return d.begin(ctx, true) }

// View runs fn in a read-only transaction on one consistent snapshot and
// ends it. fn's error is returned as is. A read conflict (a packless
// partition already overwrote what the snapshot needs) is retried like
// Update does.
func (d *DB) View(ctx context.Context, fn func(tx *Tx) error) error {
	_, err := d.run(ctx, true, fn)
	return err
}

// Update runs fn in a read-write transaction and commits it. When the
// commit (or a read) conflicts and merging cannot resolve it, Update
// aborts and runs fn again on a fresh snapshot, after an exponential
// backoff with jitter, at most Options.MaxAttempts times in all, and never
// past ctx. fn must therefore be safe to run more than once and should
// have no effects outside the transaction. It returns the commit's tid
// (storage.ZeroTid when fn changed nothing), fn's error as is, or the last
// conflict wrapped (matching storage.ErrConflict) when attempts ran out.
func (d *DB) Update(ctx context.Context, fn func(tx *Tx) error) (storage.Tid, error) {
	return d.run(ctx, false, fn)
}

func (d *DB) run(ctx context.Context, readOnly bool, fn func(tx *Tx) error) (storage.Tid, error) {
	backoff := d.opts.RetryMin
	var last error
	for attempt := 1; attempt <= d.opts.MaxAttempts; attempt++ {
		tx, err := d.begin(ctx, readOnly)
		if err != nil {
			return storage.ZeroTid, err
		}
		err = fn(tx)
		var tid storage.Tid
		if err == nil && !readOnly {
			tid, err = tx.Commit(ctx)
		}
		tx.Abort()
		if err == nil {
			return tid, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return storage.ZeroTid, err
		}
		last = err
		if attempt == d.opts.MaxAttempts {
			break
		}
		d.retries.Add(1)
		d.log.Debug("transaction conflict, retrying", "attempt", attempt, "error", err)
		sleep := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return storage.ZeroTid, fmt.Errorf("retry after conflict: %w (last conflict: %v)", ctx.Err(), last)
		case <-t.C:
		}
		backoff = min(backoff*2, d.opts.RetryMax)
	}
	return storage.ZeroTid, fmt.Errorf("gave up after %d attempts: %w", d.opts.MaxAttempts, last)
}

func (d *DB) begin(ctx context.Context, readOnly bool) (*Tx, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("begin: %w", storage.ErrClosed)
	}
	snap, err := d.main.st.LastTid(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: last tid of %q: %w", d.main.name, err)
	}
	tx := &Tx{
		db:       d,
		readOnly: readOnly,
		snaps:    map[*partition]storage.Tid{d.main: snap},
		objs:     map[objKey]*entry{},
		meta:     d.opts.Meta,
	}
	return tx, nil
}

// tidWaiter is implemented by storages that may lag behind commits made
// elsewhere (host/client.Client).
type tidWaiter interface {
	WaitForTid(ctx context.Context, tid storage.Tid) error
}

// WaitForTid waits until this node's view of a partition includes the
// transaction tid (committed by any node), so that a transaction begun
// afterwards sees it: read-your-writes across nodes. partition is a
// partition name as Persistent.Partition reports it ("" for the main
// partition). A storage that cannot lag (a backend opened directly)
// returns at once. ErrNotFound if the DB has no such partition.
func (d *DB) WaitForTid(ctx context.Context, partition string, tid storage.Tid) error {
	p := d.main
	if partition != "" && partition != d.main.name {
		p = nil
		d.partsMu.Lock()
		for k, q := range d.parts {
			if k.name == partition && (p == nil || k.server == "") {
				p = q
			}
		}
		d.partsMu.Unlock()
		if p == nil {
			return fmt.Errorf("wait for tid %s: partition %q: %w", tid, partition, ErrNotFound)
		}
	}
	if w, ok := p.st.(tidWaiter); ok {
		if err := w.WaitForTid(ctx, tid); err != nil {
			return fmt.Errorf("wait for tid %s in partition %q: %w", tid, p.name, err)
		}
	}
	return nil
}

// Stats returns the DB's counters.
func (d *DB) Stats() Stats {
	return Stats{
		Loads:         d.loads.Load(),
		CacheHits:     d.hits.Load(),
		CacheBytes:    d.cache.size(),
		Commits:       d.commits.Load(),
		Conflicts:     d.conflicts.Load(),
		Merges:        d.merges.Load(),
		Retries:       d.retries.Load(),
		ReadConflicts: d.readConflicts.Load(),
		Invalidated:   d.invalidated.Load(),
	}
}

// newOid hands out one fresh oid of p, fetching them from the storage in
// batches so that creating many objects costs few round trips.
func (p *partition) newOid(ctx context.Context) (storage.Oid, error) {
	p.oidMu.Lock()
	defer p.oidMu.Unlock()
	if len(p.oids) == 0 {
		oids, err := p.st.NewOids(ctx, 32)
		if err != nil {
			return 0, fmt.Errorf("new oids in %q: %w", p.name, err)
		}
		p.oids = oids
	}
	o := p.oids[0]
	p.oids = p.oids[1:]
	return o, nil
}

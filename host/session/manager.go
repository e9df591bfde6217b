package session

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// Names inside the container folder. The container is a small fixed
// structure, so that the session records' folder holds nothing but
// sessions and neither the count nor the sweep lease is a child of it.
const (
	// itemsName is the folder of session records, each named by the
	// Key of its browser id (never the id itself, so listing the folder
	// through an object publisher reveals no credential). Names are
	// uniformly spread hashes, so concurrent adds land in different
	// buckets of the folder and do not even conflict.
	itemsName = "items"
	// countName is a Count holding the number of records in items:
	// incremented on add, decremented on delete; concurrent changes
	// merge (ZODB's BTrees.Length) within the limit, so the limit check
	// costs one load and stays exact.
	countName = "count"
	// leaseName is a db.Document naming the node that sweeps and until
	// when.
	leaseName = "sweep_lease"
)

// Manager is the transient container plus the session data manager: it
// creates the container, hands each request a lazy Handle through its
// middleware, sweeps expired sessions and emits add/delete events. All
// methods are safe for concurrent use.
type Manager struct {
	db  *db.DB
	o   Options
	log hclog.Logger
	ids *BrowserIDs
	n   *notifier

	itemsPath, countPath, leasePath string

	readyMu sync.Mutex
	ready   atomic.Bool

	// saveLocks serialize, per node, the end-of-request commits of one
	// session (striped by key): parallel requests of one browser on one
	// node then queue for a moment instead of voting against each other
	// and merging in rounds. Across nodes the merge does the work.
	saveLocks [64]sync.Mutex

	stop      chan struct{}
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once

	created, deleted, expired, refused, failed, replays, sweeps atomic.Uint64
}

// Stats are counters since New, for status pages, tests and benchmarks.
type Stats struct {
	Created        uint64 // sessions created by this node (renewals included)
	Deleted        uint64 // sessions invalidated or renewed away by this node
	Expired        uint64 // expired sessions removed by this node's sweeper
	Refused        uint64 // new sessions refused because the container was full
	CommitFailures uint64 // end-of-request commits that failed (changes lost)
	Replays        uint64 // end-of-request commits redone in a fresh transaction after a conflict
	Sweeps         uint64 // sweeps this node ran while holding the lease
	WebhookSent    int64  // events delivered to NotifyURL
	WebhookDropped int64  // events not delivered (queue full, endpoint failing)
}

// New returns a Manager storing sessions in d under o.Container. It creates
// the container if missing; when the container lies under a mount that is
// not ready yet, New logs it and the container is created on first use
// instead. It starts the background sweeper unless o.SweepInterval is
// negative. Call Close to stop it.
func New(ctx context.Context, d *db.DB, o Options) (*Manager, error) {
	if d == nil {
		return nil, fmt.Errorf("new session manager: nil db: %w", ErrInvalidOptions)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new session manager: %w", err)
	}
	if o.Node == "" {
		o.Node = defaultNode()
	}
	o.Container = path.Clean(o.Container)
	ids, err := newBrowserIDs(&o)
	if err != nil {
		return nil, fmt.Errorf("new session manager: %w", err)
	}
	m := &Manager{
		db:        d,
		o:         o,
		log:       o.Logger,
		ids:       ids,
		itemsPath: path.Join(o.Container, itemsName),
		countPath: path.Join(o.Container, countName),
		leasePath: path.Join(o.Container, leaseName),
		stop:      make(chan struct{}),
	}
	if err := m.ensureContainer(ctx); err != nil {
		if !errors.Is(err, db.ErrMountUnavailable) {
			return nil, fmt.Errorf("new session manager: %w", err)
		}
		m.log.Warn("session container not available yet; will create it on first use", "container", o.Container, "error", err)
	}
	m.n = newNotifier(&m.o)
	if o.SweepInterval > 0 {
		m.wg.Add(1)
		go m.sweepLoop()
	}
	return m, nil
}

// defaultNode names this process when Options.Node is empty.
func defaultNode() string {
	h, err := os.Hostname()
	if err != nil {
		h = "node"
	}
	var b [4]byte
	_, _ = crand.Read(b[:]) // crypto/rand never fails on supported systems
	return fmt.Sprintf("%s-%d-%s", h, os.Getpid(), hex.EncodeToString(b[:]))
}

// ensureContainer creates the container, its items folder and its count
// if missing. After the first success it costs nothing.
func (m *Manager) ensureContainer(ctx context.Context) error {
	if m.ready.Load() {
		return nil
	}
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	if m.ready.Load() {
		return nil
	}
	// Check read-only first: every node runs this at start, and a
	// container that exists must not be written.
	exists := false
	err := m.db.View(ctx, func(tx *db.Tx) error {
		if _, err := tx.Folder(ctx, m.itemsPath); err != nil {
			return err
		}
		_, err := db.GetAs[*Count](ctx, tx, m.countPath)
		return err
	})
	switch {
	case err == nil:
		exists = true
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("open session container %s: %w", m.o.Container, err)
	}
	if !exists {
		_, err = m.db.Update(ctx, func(tx *db.Tx) error {
			c, err := tx.MkdirAll(ctx, m.o.Container)
			if err != nil {
				return err
			}
			items, err := c.Mkdir(ctx, itemsName)
			if err != nil {
				return err
			}
			_, err = db.GetAs[*Count](ctx, tx, m.countPath)
			if errors.Is(err, storage.ErrNotFound) {
				// A container created by an older layout or by hand:
				// count what is there.
				n, err := items.Len(ctx)
				if err != nil {
					return err
				}
				return c.Put(ctx, countName, &Count{N: int64(n)})
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("create session container %s: %w", m.o.Container, err)
		}
		m.log.Info("session container ready", "container", m.o.Container)
	}
	m.ready.Store(true)
	return nil
}

// BrowserIDs returns the cookie half of the manager.
func (m *Manager) BrowserIDs() *BrowserIDs { return m.ids }

// Options returns the manager's options with defaults applied.
func (m *Manager) Options() Options { return m.o }

// Count returns the number of sessions in the container, expired ones not
// yet swept included. One load of the count object.
func (m *Manager) Count(ctx context.Context) (int, error) {
	if err := m.ensureContainer(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := m.db.View(ctx, func(tx *db.Tx) error {
		c, err := db.GetAs[*Count](ctx, tx, m.countPath)
		if err != nil {
			return err
		}
		n = c.N
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count sessions in %s: %w", m.o.Container, err)
	}
	return int(max(n, 0)), nil
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	s := Stats{
		Created:        m.created.Load(),
		Deleted:        m.deleted.Load(),
		Expired:        m.expired.Load(),
		Refused:        m.refused.Load(),
		CommitFailures: m.failed.Load(),
		Replays:        m.replays.Load(),
		Sweeps:         m.sweeps.Load(),
	}
	if m.n != nil {
		s.WebhookSent, s.WebhookDropped = m.n.sent.Load(), m.n.dropped.Load()
	}
	return s
}

// Close stops the sweeper (waiting for a sweep in progress to end), then
// delivers the webhook events still queued until ctx ends. Requests still
// in flight finish normally. Close twice returns nil.
func (m *Manager) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.stop)
		m.wg.Wait()
		err = m.n.close(ctx)
	})
	return err
}

// sweepLoop runs Sweep every SweepInterval, with up to 10% jitter so
// nodes started together do not contend for the lease in lockstep.
func (m *Manager) sweepLoop() {
	defer m.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	iv := m.o.SweepInterval
	for {
		wait := iv - iv/10 + rand.N(iv/5+1)
		t := time.NewTimer(wait)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("session sweep failed", "container", m.o.Container, "error", err)
		}
	}
}

// sweepBatch bounds the sessions examined per read transaction and
// deleted per write transaction, so no transaction stays open long (a
// packless partition cannot serve old snapshots for long).
const sweepBatch = 256

// leaseTTL is how long a sweep lease stays valid without renewal.
func (m *Manager) leaseTTL() time.Duration {
	iv := m.o.SweepInterval
	if iv <= 0 {
		iv = DefaultSweepInterval
	}
	return 3 * iv
}

// grace is how long past expiry a session waits before the sweeper
// removes it. A request that found the session alive may still be
// committing a change to it; the grace (at least Refresh, at least 5s)
// keeps the sweeper from removing it under that request, and absorbs
// small clock differences between nodes. Expired sessions are invisible
// to requests meanwhile.
func (m *Manager) grace() time.Duration { return max(m.o.Refresh, 5*time.Second) }

// Sweep removes expired sessions and returns how many it removed. Only the
// node holding the sweep lease sweeps: Sweep first takes or renews the
// lease (a document in the container that names the node and an expiry,
// taken in a transaction so two nodes cannot both win) and returns 0 at
// once when another node holds it. Deleting is safe even without the
// lease: every deletion re-checks the session in its own transaction, and
// concurrent deletions merge in the folder. Removed records become
// unreachable, so the packless collector frees their space. Sweep emits a
// delete event (reason "expired", no ID: only the key is stored) per
// removed session.
func (m *Manager) Sweep(ctx context.Context) (int, error) {
	if m.closed.Load() {
		return 0, ErrClosed
	}
	if err := m.ensureContainer(ctx); err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	held, err := m.takeLease(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep: take lease: %w", err)
	}
	if !held {
		return 0, nil
	}
	m.sweeps.Add(1)
	cutoff := m.o.Now().Add(-m.grace())
	removed := 0
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("sweep: %w", err)
		}
		var names, expired []string
		err := m.db.View(ctx, func(tx *db.Tx) error {
			names, expired = nil, nil
			items, err := tx.Folder(ctx, m.itemsPath)
			if err != nil {
				return err
			}
			if names, err = items.List(ctx, after, sweepBatch); err != nil {
				return err
			}
			for _, name := range names {
				rec, err := db.GetAs[*Record](ctx, tx, path.Join(m.itemsPath, name))
				if errors.Is(err, storage.ErrNotFound) || errors.Is(err, db.ErrWrongType) {
					continue
				}
				if err != nil {
					return err
				}
				if rec.expired(cutoff, m.o.Timeout, m.o.Lifetime) {
					expired = append(expired, name)
				}
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("sweep: scan %s: %w", m.itemsPath, err)
		}
		if len(expired) > 0 {
			n, err := m.deleteExpired(ctx, expired, cutoff)
			removed += n
			if err != nil {
				return removed, err
			}
		}
		if len(names) < sweepBatch {
			break
		}
		after = names[len(names)-1]
	}
	if removed > 0 {
		m.log.Info("swept expired sessions", "container", m.o.Container, "removed", removed)
	}
	return removed, nil
}

// deleteExpired removes the named sessions that are still expired at
// cutoff, in one transaction.
func (m *Manager) deleteExpired(ctx context.Context, names []string, cutoff time.Time) (int, error) {
	var events []Event
	_, err := m.db.Update(ctx, func(tx *db.Tx) error {
		events = events[:0]
		items, err := tx.Folder(ctx, m.itemsPath)
		if err != nil {
			return err
		}
		count, err := db.GetAs[*Count](ctx, tx, m.countPath)
		if err != nil {
			return err
		}
		for _, name := range names {
			rec, err := db.GetAs[*Record](ctx, tx, path.Join(m.itemsPath, name))
			if errors.Is(err, storage.ErrNotFound) {
				continue // another node got there first
			}
			if err != nil {
				return err
			}
			if !rec.expired(cutoff, m.o.Timeout, m.o.Lifetime) {
				continue // used again since the scan
			}
			ev := rec.event(EventDelete, ReasonExpired, "", m.o.Now())
			ev.Key = name
			events = append(events, ev)
			if err := unlink(ctx, items, count, name, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep: delete expired sessions: %w", err)
	}
	m.expired.Add(uint64(len(events)))
	for _, ev := range events {
		m.emit(ev)
	}
	return len(events), nil
}

// takeLease takes the sweep lease, or renews it when this node holds it.
// It reports false when another node holds a lease that has not expired.
func (m *Manager) takeLease(ctx context.Context) (bool, error) {
	held := false
	_, err := m.db.Update(ctx, func(tx *db.Tx) error {
		held = false
		now := m.o.Now()
		until := now.Add(m.leaseTTL()).UnixNano()
		doc, err := tx.Document(ctx, m.leasePath)
		if errors.Is(err, storage.ErrNotFound) {
			held = true
			return tx.Put(ctx, m.leasePath, db.NewDocument(map[string]any{"node": m.o.Node, "until": until}))
		}
		if err != nil {
			return err
		}
		holder, _ := doc.Data["node"].(string)
		exp, _ := doc.Data["until"].(int64)
		if holder != m.o.Node && exp > now.UnixNano() {
			return nil
		}
		held = true
		doc.Data["node"], doc.Data["until"] = m.o.Node, until
		return nil
	})
	return held, err
}

// emit stamps and delivers one event.
func (m *Manager) emit(ev Event) {
	ev.Node, ev.Container = m.o.Node, m.o.Container
	m.n.emit(ev)
}

// unlink removes the session record rec, named name, from the items
// folder: it marks the record deleted (so concurrent writers of the
// record conflict, see Record.Deleted), unlinks it and decrements the
// count. The record becomes unreachable and the packless collector
// frees it.
func unlink(ctx context.Context, items *db.Folder, count *Count, name string, rec *Record) error {
	rec.Deleted = true
	if err := items.Delete(ctx, name); err != nil {
		return fmt.Errorf("unlink session %s: %w", name, err)
	}
	count.N--
	return nil
}

// saveLock returns the stripe of saveLocks for session key k.
func (m *Manager) saveLock(k string) *sync.Mutex {
	var h uint32 = 2166136261
	for i := 0; i < len(k); i++ {
		h = (h ^ uint32(k[i])) * 16777619
	}
	return &m.saveLocks[h%uint32(len(m.saveLocks))]
}

// recordPath is the path of the record of the session whose id has key k.
func (m *Manager) recordPath(k string) string { return m.itemsPath + "/" + k }

package db

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// mountPoint is the live state of one Mount.
type mountPoint struct {
	cfg   Mount
	comps []string
	path  string

	mu        sync.Mutex
	state     MountState
	target    Target
	part      *partition
	folder    storage.Oid // oid of the target folder inside part
	err       error
	attempts  int
	since     time.Time
	nextRetry time.Time
	retrying  bool
}

// ready returns the mount's partition and folder, or a *MountError.
func (m *mountPoint) ready() (*partition, storage.Oid, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == MountReady {
		return m.part, m.folder, nil
	}
	cause := ErrMountUnavailable
	var err error = cause
	if m.err != nil {
		err = fmt.Errorf("%w: %w", cause, m.err)
	}
	return nil, 0, &MountError{Name: m.cfg.Name, Path: m.path, Err: err}
}

func (m *mountPoint) setState(s MountState, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != s {
		m.since = time.Now()
	}
	m.state = s
	m.err = err
}

// tryMount runs the mount function and bootstraps the target folder.
func (d *DB) tryMount(ctx context.Context, m *mountPoint) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.MountTimeout)
	defer cancel()
	m.mu.Lock()
	m.attempts++
	m.mu.Unlock()
	err := d.mount(ctx, m)
	if err != nil {
		m.setState(MountFailed, err)
		d.log.Warn("mount failed", "mount", m.cfg.Name, "path", m.path, "error", err)
		return err
	}
	m.mu.Lock()
	m.nextRetry = time.Time{}
	t := m.target
	m.mu.Unlock()
	m.setState(MountReady, nil)
	d.log.Info("mounted", "mount", m.cfg.Name, "path", m.path, "partition", t.Partition, "folder", t.Folder, "server", t.Server)
	return nil
}

func (d *DB) mount(ctx context.Context, m *mountPoint) (err error) {
	t, err := callResolve(ctx, m.cfg.Resolve)
	if err != nil {
		return fmt.Errorf("mount function: %w", err)
	}
	if t.Partition == "" {
		return fmt.Errorf("mount function answered no partition: %w", storage.ErrInvalid)
	}
	comps, err := splitPath(t.Folder)
	if err != nil {
		return fmt.Errorf("mount function answered folder %q: %w", t.Folder, err)
	}
	m.mu.Lock()
	m.target = t
	m.mu.Unlock()
	p, err := d.partitionFor(ctx, t)
	if err != nil {
		return err
	}
	if p == d.main && isPrefix(comps, m.comps) {
		return fmt.Errorf("target folder %q contains the mount point itself: %w", t.Folder, storage.ErrInvalid)
	}
	var folder storage.Oid
	if p.st.Capabilities().ReadOnly {
		err = d.View(ctx, func(tx *Tx) error {
			e, err := tx.walkIn(ctx, p, storage.RootOid, "", comps)
			if err != nil {
				return err
			}
			if _, ok := e.obj.(*Folder); !ok {
				return fmt.Errorf("%s: %w", t.Folder, ErrNotFolder)
			}
			folder = e.oid
			return nil
		})
	} else {
		_, err = d.Update(ctx, func(tx *Tx) error {
			if _, err := tx.ensureRoot(ctx, p); err != nil {
				return err
			}
			f, err := tx.mkdirAllIn(ctx, p, storage.RootOid, "", comps, true)
			if err != nil {
				return err
			}
			folder = f.e.oid
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("bootstrap folder %q in partition %q: %w", t.Folder, t.Partition, err)
	}
	m.mu.Lock()
	m.part = p
	m.folder = folder
	m.mu.Unlock()
	return nil
}

// callResolve calls a mount function, turning a panic in it into an error
// so a faulty plugin adapter cannot take the node down.
func callResolve(ctx context.Context, fn func(context.Context) (Target, error)) (t Target, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mount function panicked: %v", r)
		}
	}()
	return fn(ctx)
}

// scheduleRetry starts the background loop that retries a failed mount
// with capped exponential backoff until it succeeds or the DB closes.
func (d *DB) scheduleRetry(m *mountPoint) {
	m.mu.Lock()
	if m.retrying {
		m.mu.Unlock()
		return
	}
	m.retrying = true
	backoff := d.opts.MountRetryMin
	m.nextRetry = time.Now().Add(backoff)
	m.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			m.mu.Lock()
			m.retrying = false
			m.mu.Unlock()
		}()
		for first := true; ; first = false {
			if !first {
				m.mu.Lock()
				m.nextRetry = time.Now().Add(backoff)
				m.mu.Unlock()
			}
			t := time.NewTimer(backoff)
			select {
			case <-d.stop:
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() {
				select {
				case <-d.stop:
					cancel()
				case <-stopped:
				}
			}()
			err := d.tryMount(ctx, m)
			close(stopped)
			cancel()
			if err == nil {
				return
			}
			backoff = min(backoff*2, d.opts.MountRetryMax)
		}
	}()
}

// Mounts returns the state of every mount, in the order of
// Options.Mounts' paths (longest first).
func (d *DB) Mounts() []MountStatus {
	out := make([]MountStatus, 0, len(d.mounts))
	for _, m := range d.mounts {
		m.mu.Lock()
		s := MountStatus{
			Name:      m.cfg.Name,
			Path:      m.path,
			State:     m.state,
			Target:    m.target,
			Attempts:  m.attempts,
			Since:     m.since,
			NextRetry: m.nextRetry,
		}
		if m.err != nil {
			s.Err = m.err.Error()
		}
		m.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// mountFor returns the mount with the longest path that is a prefix of
// comps (mounts are sorted longest first), or nil.
func (d *DB) mountFor(comps []string) *mountPoint {
	for _, m := range d.mounts {
		if isPrefix(m.comps, comps) {
			return m
		}
	}
	return nil
}

// mountNamesUnder returns the names of mount points directly inside the
// main-tree folder at comps.
func (d *DB) mountNamesUnder(comps []string) []string {
	var names []string
	for _, m := range d.mounts {
		if len(m.comps) == len(comps)+1 && isPrefix(comps, m.comps) {
			names = append(names, m.comps[len(comps)])
		}
	}
	return names
}

func isPrefix(prefix, comps []string) bool {
	if len(prefix) > len(comps) {
		return false
	}
	for i := range prefix {
		if prefix[i] != comps[i] {
			return false
		}
	}
	return true
}

package pluginhost

import (
	"context"
	"fmt"
	"iter"
	"sync"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/plugins/sdk"
)

// hostStorage is a storage served by a plugin, as the host uses it. It
// follows the plugin across restarts: each call runs on the current
// process, reopening the storage there first if the process changed since
// the last call. Transactions belong to the process they began in; if it
// crashes they fail with sdk.ErrPluginUnavailable and must be retried.
// Safe for concurrent use.
type hostStorage struct {
	p    *Plugin
	typ  string
	name string
	cfg  hcl.Values

	mu     sync.Mutex
	cur    *sdk.RemoteStorage
	gen    uint64
	caps   storage.Capabilities
	closed bool
}

// remote returns the storage in the plugin's current process.
func (s *hostStorage) remote(ctx context.Context) (*sdk.RemoteStorage, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("storage %q: %w", s.name, storage.ErrClosed)
	}
	c, gen, err := s.p.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", s.name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("storage %q: %w", s.name, storage.ErrClosed)
	}
	if s.cur != nil && s.gen == gen {
		return s.cur, nil
	}
	reopen := s.cur != nil
	r, err := c.Open(ctx, s.typ, s.name, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("open storage %q (type %s): %w", s.name, s.typ, err)
	}
	if reopen {
		s.p.logger.Info("reopened storage after plugin restart", "storage", s.name, "type", s.typ)
	}
	s.cur, s.gen, s.caps = r, gen, r.Capabilities()
	return r, nil
}

func (s *hostStorage) Capabilities() storage.Capabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

func (s *hostStorage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return storage.Record{}, err
	}
	return r.Load(ctx, oid)
}

func (s *hostStorage) LoadBefore(ctx context.Context, oid storage.Oid, tid storage.Tid) (storage.Record, storage.Tid, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return storage.Record{}, 0, err
	}
	return r.LoadBefore(ctx, oid, tid)
}

func (s *hostStorage) NewOids(ctx context.Context, n int) ([]storage.Oid, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return nil, err
	}
	return r.NewOids(ctx, n)
}

func (s *hostStorage) Begin(ctx context.Context, meta storage.TxMeta) (storage.Txn, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return nil, err
	}
	return r.Begin(ctx, meta)
}

func (s *hostStorage) LastTid(ctx context.Context) (storage.Tid, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return 0, err
	}
	return r.LastTid(ctx)
}

func (s *hostStorage) History(ctx context.Context, oid storage.Oid, max int) ([]storage.Revision, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return nil, err
	}
	return r.History(ctx, oid, max)
}

func (s *hostStorage) Iterate(ctx context.Context, start, stop storage.Tid) iter.Seq2[storage.TxRecords, error] {
	return func(yield func(storage.TxRecords, error) bool) {
		r, err := s.remote(ctx)
		if err != nil {
			yield(storage.TxRecords{}, err)
			return
		}
		r.Iterate(ctx, start, stop)(yield)
	}
}

func (s *hostStorage) UndoLog(ctx context.Context, max int) ([]storage.TxInfo, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return nil, err
	}
	return r.UndoLog(ctx, max)
}

func (s *hostStorage) Undo(ctx context.Context, tid storage.Tid, meta storage.TxMeta) (storage.Tid, []storage.Oid, error) {
	r, err := s.remote(ctx)
	if err != nil {
		return 0, nil, err
	}
	return r.Undo(ctx, tid, meta)
}

func (s *hostStorage) Pack(ctx context.Context, tid storage.Tid, progress func(done, total int64)) error {
	r, err := s.remote(ctx)
	if err != nil {
		return err
	}
	return r.Pack(ctx, tid, progress)
}

// Close closes the storage in the plugin (if its process is running) and
// forgets it. Close twice returns nil.
func (s *hostStorage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	s.p.m.forget(s)
	if cur == nil {
		return nil
	}
	if err := cur.Close(); err != nil {
		return fmt.Errorf("close storage %q: %w", s.name, err)
	}
	return nil
}

var _ storage.Storage = (*hostStorage)(nil)

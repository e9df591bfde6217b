package client

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/server"
	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/packless"
)

// TestConformance runs the storage contract's suite through client ->
// server -> memstorage: the network client must be indistinguishable
// from a backend.
func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			ts := startServer(t, nil)
			return openClient(t, ts.addr, nil), nil
		},
	})
}

// TestConformancePackless runs the suite through client -> server ->
// packless in process, with its garbage collection at commit: the
// server invalidates what a commit collected, so neither its cache nor
// the client's serves a collected object.
func TestConformancePackless(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			st, err := packless.Open(filepath.Join(dir, "sessions"), packless.Options{NoSync: true})
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { st.Close() })
			ts := startServer(t, func(o *server.Options) {
				o.Partitions["main"] = server.Partition{Storage: st}
			})
			return openClient(t, ts.addr, nil), nil
		},
		CollectsGarbage: true,
	})
}

// TestConformanceBusyPoll runs the suite through client -> server with
// busy-polling reads on both ends of the connection.
func TestConformanceBusyPoll(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			ts := startServer(t, func(o *server.Options) { o.BusyPoll = 50 * time.Microsecond })
			return openClient(t, ts.addr, func(o *Options) { o.BusyPoll = 50 * time.Microsecond }), nil
		},
	})
}

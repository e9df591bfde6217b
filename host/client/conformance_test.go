package client

import (
	"testing"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
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

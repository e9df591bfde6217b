package filestorage_test

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/filestorage"
)

// crash damages the Data.fs of a closed storage in dir as the suite asks:
// a torn append (the last 1,500 bytes cut, about one transaction of the
// crash subtest and part of the one before) or an unfinished sector (the
// last 700 bytes overwritten).
func crash(dir string, mode storagetest.CrashMode) error {
	path := filepath.Join(dir, "Data.fs")
	switch mode {
	case storagetest.CrashTruncate:
		return filestorage.DamageTail(path, 1500, false)
	default:
		return filestorage.DamageTail(path, 700, true)
	}
}

func factory(opts filestorage.Options) storagetest.Factory {
	return storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			o := opts
			o.Logger = hclog.New(&hclog.LoggerOptions{Name: "filestorage", Level: hclog.Warn, Output: testWriter{t}})
			return filestorage.Open(filepath.Join(dir, "Data.fs"), o)
		},
		Persistent: true,
		Crash:      crash,
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, factory(filestorage.Options{}))
}

func TestConformanceAlways(t *testing.T) {
	if testing.Short() {
		t.Skip("short: the default policy (group) runs the suite")
	}
	storagetest.Run(t, factory(filestorage.Options{Sync: filestorage.SyncAlways}))
}

func TestConformanceNoSync(t *testing.T) {
	if testing.Short() {
		t.Skip("short: the default policy (group) runs the suite")
	}
	storagetest.Run(t, factory(filestorage.Options{Sync: filestorage.SyncNone}))
}

// testWriter sends log lines to t.Log, so they show with the failing test.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

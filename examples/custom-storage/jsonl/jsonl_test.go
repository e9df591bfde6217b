package jsonl

import (
	"path/filepath"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Factory{
		Open: func(t testing.TB, dir string) (storage.Storage, error) {
			return Open(Options{Path: filepath.Join(dir, "data.jsonl")})
		},
		Persistent: true,
		Crash: func(dir string, mode storagetest.CrashMode) error {
			return Crash(filepath.Join(dir, "data.jsonl"), mode == storagetest.CrashTruncate)
		},
	})
}

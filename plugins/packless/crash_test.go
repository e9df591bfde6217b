package packless_test

import (
	"regexp"

	"github.com/zhostdb/zhost/host/storage/storagetest"
	"github.com/zhostdb/zhost/plugins/packless"
)

var tableName = regexp.MustCompile(`^[0-9]+\.(ldb|sst)$`)

// crashJournal damages the tail of the newest LevelDB journal: where a
// kill -9 or a power loss tears the newest commits.
func crashJournal(dir string, mode storagetest.CrashMode) error {
	return packless.DamageJournal(dir, 1500, mode == storagetest.CrashGarbage)
}

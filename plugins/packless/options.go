package packless

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// Defaults of Options and of the storage block's attributes.
const (
	DefaultCacheSize   = 8 << 20 // LevelDB block cache
	DefaultBloomBits   = 10      // bloom filter bits per key: about 1% false positives
	DefaultWriteBuffer = 1 << 20 // LevelDB memtable (and journal) size before a flush
)

// Options configures a packless store. The zero value is durable and uses
// the defaults above.
type Options struct {
	// NoSync skips the fsync at each Finish. A crash may then lose the
	// newest transactions (never tear one). The storage block's
	// `sync = false` sets it.
	NoSync bool
	// CacheSize is LevelDB's block cache in bytes; 0 means
	// DefaultCacheSize, negative disables the cache.
	CacheSize int64
	// BloomBits is the bloom filter's bits per key, which saves a disk
	// read for most loads of absent keys; 0 means DefaultBloomBits,
	// negative disables the filter.
	BloomBits int
	// WriteBuffer is LevelDB's memtable size in bytes; 0 means
	// DefaultWriteBuffer. Smaller keeps less garbage on disk under churn,
	// larger compacts less often.
	WriteBuffer int64
	// ReadOnly opens the store read-only (shared lock): every write
	// returns storage.ErrReadOnly.
	ReadOnly bool
	// Verify reads every record once at open, checking checksums, and
	// recovers the store if any table is corrupt. It costs a full scan;
	// without it corruption of an old table shows up at the first read
	// of the damaged part.
	Verify bool
	// Logger receives recovery, collection and LevelDB's own lines. Nil
	// means hclog.NewNullLogger().
	Logger hclog.Logger
}

// Schema is the body of a `storage "NAME" { type = "packless" ... }`
// block, so `zhost validate` reports a mistake at its line.
func Schema() hcl.Schema {
	return hcl.Schema{Attributes: []hcl.Attribute{
		{Name: "path", Type: hcl.TypePath, Required: true,
			Description: "Directory of the LevelDB store; created if missing."},
		{Name: "sync", Type: hcl.TypeBool, Default: true,
			Description: "fsync every commit. false is faster but a crash may lose the newest commits."},
		{Name: "cache_size", Type: hcl.TypeSize, Default: int64(DefaultCacheSize),
			Description: "LevelDB block cache size."},
		{Name: "bloom_bits", Type: hcl.TypeNumber, Default: float64(DefaultBloomBits),
			Description: "Bloom filter bits per key (0 disables the filter)."},
		{Name: "write_buffer", Type: hcl.TypeSize, Default: int64(DefaultWriteBuffer),
			Description: "LevelDB memtable size; smaller keeps disk use closer to live data under churn."},
		{Name: "read_only", Type: hcl.TypeBool, Default: false,
			Description: "Open the store read-only."},
	}}
}

// FromConfig opens the store a decoded storage block describes. Values
// may have crossed the plugin boundary as JSON, so numbers are accepted as
// any numeric Go type. Errors wrap storage.ErrInvalid for a bad value.
func FromConfig(v hcl.Values, logger hclog.Logger) (*Storage, error) {
	opts, path, err := optionsFromValues(v)
	if err != nil {
		return nil, err
	}
	opts.Logger = logger
	return Open(path, opts)
}

func optionsFromValues(v hcl.Values) (Options, string, error) {
	var opts Options
	path, ok := v["path"].(string)
	if !ok || path == "" {
		return opts, "", fmt.Errorf("packless: attribute \"path\" is required: %w", storage.ErrInvalid)
	}
	if x, present := v["sync"]; present {
		b, ok := x.(bool)
		if !ok {
			return opts, "", fmt.Errorf("packless: attribute \"sync\": want a bool, got %T: %w", x, storage.ErrInvalid)
		}
		opts.NoSync = !b
	}
	if x, present := v["read_only"]; present {
		b, ok := x.(bool)
		if !ok {
			return opts, "", fmt.Errorf("packless: attribute \"read_only\": want a bool, got %T: %w", x, storage.ErrInvalid)
		}
		opts.ReadOnly = b
	}
	sizes := []struct {
		name string
		dst  *int64
	}{{"cache_size", &opts.CacheSize}, {"write_buffer", &opts.WriteBuffer}}
	for _, s := range sizes {
		x, present := v[s.name]
		if !present {
			continue
		}
		n, err := integer(x)
		if err != nil || n < 0 {
			return opts, "", fmt.Errorf("packless: attribute %q: want a size of zero or more bytes, got %v: %w", s.name, x, storage.ErrInvalid)
		}
		*s.dst = n
	}
	if opts.WriteBuffer != 0 && opts.WriteBuffer < 64<<10 {
		return opts, "", fmt.Errorf("packless: attribute \"write_buffer\": %d bytes is below 64KiB: %w", opts.WriteBuffer, storage.ErrInvalid)
	}
	if x, present := v["bloom_bits"]; present {
		n, err := integer(x)
		if err != nil || n < 0 || n > 64 {
			return opts, "", fmt.Errorf("packless: attribute \"bloom_bits\": want a whole number 0..64, got %v: %w", x, storage.ErrInvalid)
		}
		opts.BloomBits = int(n)
		if n == 0 {
			opts.BloomBits = -1 // 0 in the config disables the filter
		}
	}
	return opts, path, nil
}

// integer converts a decoded number to int64, refusing fractions.
func integer(x any) (int64, error) {
	switch n := x.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case float64:
		if n != math.Trunc(n) || n > math.MaxInt64 || n < math.MinInt64 {
			return 0, fmt.Errorf("%v is not a whole number", n)
		}
		return int64(n), nil
	case json.Number:
		return n.Int64()
	}
	return 0, fmt.Errorf("%T is not a number", x)
}

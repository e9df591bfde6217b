package filestorage

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	zhcl "github.com/zhostdb/zhost/hcl"
)

// SyncPolicy says when a commit is flushed to stable storage.
type SyncPolicy string

const (
	// SyncAlways: every Finish fsyncs Data.fs before it returns, holding
	// the commit lock, so the next committer waits for the fsync. A
	// finished transaction survives power loss.
	SyncAlways SyncPolicy = "always"
	// SyncGroup: Finish releases the commit lock before it fsyncs, so the
	// next committer writes while earlier ones wait, and one fsync covers
	// every transaction written meanwhile. Finish still returns only once
	// its transaction is durable and visible, so this is as safe as
	// SyncAlways; a lone committer syncs at once, with no added wait, and
	// concurrent ones share fsyncs. The default.
	SyncGroup SyncPolicy = "group"
	// SyncNone: never fsync on commit (the operating system writes back
	// when it likes). A crash of the machine may lose the newest
	// transactions; open then truncates the torn tail. A crash of the
	// process alone loses nothing.
	SyncNone SyncPolicy = "none"
)

func (p SyncPolicy) valid() bool {
	switch p {
	case SyncAlways, SyncGroup, SyncNone:
		return true
	}
	return false
}

// DefaultIndexInterval is how much data may be appended after the last
// saved index before it is saved again in the background.
const DefaultIndexInterval = 64 << 20

// Options configures Open. The zero value is a read-write storage that
// fsyncs every commit (group commit) and keeps no Data.fs.old after pack.
type Options struct {
	// Sync is the commit sync policy; empty means SyncGroup.
	Sync SyncPolicy
	// KeepOld keeps the pre-pack file as Data.fs.old (replacing an older
	// one) instead of deleting it.
	KeepOld bool
	// ReadOnly opens without writing anything: no tail truncation, no
	// index save, every write returns storage.ErrReadOnly. Several
	// read-only opens may share a file; a writer excludes them all.
	ReadOnly bool
	// Logger receives recovery, pack and index messages; nil means
	// hclog.NewNullLogger().
	Logger hclog.Logger
	// IndexInterval is the number of bytes appended after which the index
	// is saved again in the background (0: DefaultIndexInterval; < 0:
	// only on Close and after pack).
	IndexInterval int64
	// Now is the clock tids are derived from; nil means time.Now. Tests
	// set it to exercise a clock that goes backwards.
	Now func() time.Time

	// noPrealloc turns preallocation off (tests and benchmarks compare).
	noPrealloc bool
	// noDurable writes transactions without a durable end, as this
	// package did before it recorded one (tests of older files).
	noDurable bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Sync == "" {
		o.Sync = SyncGroup
	}
	if !o.Sync.valid() {
		return o, fmt.Errorf("sync policy %q: want %q, %q or %q", o.Sync, SyncAlways, SyncGroup, SyncNone)
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.IndexInterval == 0 {
		o.IndexInterval = DefaultIndexInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// Schema is the body of a `storage "NAME" { type = "filestorage" ... }`
// block in cluster.hcl.
func Schema() zhcl.Schema {
	return zhcl.Schema{Attributes: []zhcl.Attribute{
		{Name: "path", Type: zhcl.TypePath, Required: true,
			Description: "The data file (Data.fs). Its index, lock and pack files sit beside it."},
		{Name: "sync", Type: zhcl.TypeString, Default: string(SyncGroup),
			Description: `When commits are flushed to disk: "group" (fsync each commit before it returns; concurrent commits share fsyncs), "always" (fsync each commit on its own, holding the commit lock), "none" (leave it to the operating system: a machine crash may lose the newest commits).`},
		{Name: "keep_old", Type: zhcl.TypeBool, Default: false,
			Description: "Keep the file as it was before the last pack as Data.fs.old."},
		{Name: "read_only", Type: zhcl.TypeBool, Default: false,
			Description: "Open the file read-only: every write is refused."},
	}}
}

// OptionsFromConfig turns a block body decoded with Schema into a path and
// Options. It checks types and the sync policy but touches no file.
func OptionsFromConfig(v zhcl.Values, logger hclog.Logger) (string, Options, error) {
	var opts Options
	path, ok := v["path"].(string)
	if !ok || path == "" {
		return "", opts, fmt.Errorf("filestorage: attribute \"path\" is required and must be a string")
	}
	opts.Sync = SyncGroup
	if raw, present := v["sync"]; present {
		s, ok := raw.(string)
		if !ok {
			return "", opts, fmt.Errorf("filestorage: attribute \"sync\": want a string, have %T", raw)
		}
		opts.Sync = SyncPolicy(s)
		if !opts.Sync.valid() {
			return "", opts, fmt.Errorf("filestorage: attribute \"sync\": %q is not one of %q, %q, %q", s, SyncAlways, SyncGroup, SyncNone)
		}
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"keep_old", &opts.KeepOld}, {"read_only", &opts.ReadOnly}} {
		if raw, present := v[b.name]; present {
			x, ok := raw.(bool)
			if !ok {
				return "", opts, fmt.Errorf("filestorage: attribute %q: want a bool, have %T", b.name, raw)
			}
			*b.dst = x
		}
	}
	opts.Logger = logger
	return path, opts, nil
}

// FromConfig opens the storage a config block describes.
func FromConfig(v zhcl.Values, logger hclog.Logger) (*Storage, error) {
	path, opts, err := OptionsFromConfig(v, logger)
	if err != nil {
		return nil, err
	}
	return Open(path, opts)
}

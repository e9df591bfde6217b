package server

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// Options configure a Server. Zero fields take the defaults below.
type Options struct {
	// Name identifies the server in logs and in the Welcome it sends
	// ("zeo"). Default "zhost".
	Name string
	// Listen is the TCP address Start listens on ("127.0.0.1:9100").
	// Serve ignores it.
	Listen string
	// Partitions maps a partition name to what it serves. At least one.
	Partitions map[string]Partition
	// TLS, when set, makes every connection TLS. Set ClientAuth and
	// ClientCAs to require client certificates.
	TLS *tls.Config
	// CommitTimeout bounds the wait for a partition's commit lock at Vote
	// (the client may ask for less). Default 30s.
	CommitTimeout time.Duration
	// TransactionTimeout bounds how long a voted transaction may hold the
	// commit lock before its Finish or Abort arrives; past it the server
	// aborts the transaction and releases the lock. Default 60s.
	TransactionTimeout time.Duration
	// FrameTimeout bounds how long a started frame may take to arrive
	// completely (a client that sends half a frame and stalls is
	// disconnected), and how long a new connection may take to send its
	// Hello. Default 30s.
	FrameTimeout time.Duration
	// WriteTimeout bounds one write to a client; a client that does not
	// read is disconnected. Default 30s.
	WriteTimeout time.Duration
	// BusyPoll is how long a connection's reads keep polling the socket
	// after a message before they sleep in the poller (see
	// internal/busypoll): CPU for latency. 0: off.
	BusyPoll time.Duration
	// MaxMessageSize limits a frame's length in both directions. Default
	// wire.DefaultMaxMessageSize (64 MiB); at least wire.MinMaxMessageSize.
	MaxMessageSize int
	// MaxInFlightBytes bounds the bytes of the request frames one
	// connection has being handled at once. When the next frame would
	// exceed it the server stops reading from that connection until
	// replies free room (backpressure): no request is dropped or failed
	// for it. Frames of at most 64 KiB are not counted (at most 128
	// requests run at once per connection anyway), so Finish and Abort
	// always get through. A voted transaction's records stay in memory
	// until its Finish or Abort, outside this budget (one per partition
	// at most, the commit lock serializing votes). Default
	// 2 * MaxMessageSize; at least MaxMessageSize.
	MaxInFlightBytes int
	// MaxQueuedBytes bounds the replies and invalidations queued for one
	// client; a client that falls that far behind is disconnected.
	// Default 4 * MaxMessageSize.
	MaxQueuedBytes int
	// CacheSize bounds, in bytes, the server's cache of current records
	// of each partition. Default 64 MiB; negative disables it.
	CacheSize int64
	// InvalidationLogSize is how many transactions each partition's
	// invalidation log keeps. Default 10000.
	InvalidationLogSize int
	// DataDir, when set, is where the invalidation logs are kept
	// (invalidations-<partition>.log), so clients catch up across server
	// restarts. Empty keeps them in memory only.
	DataDir string
	// Logger receives the server's log. Default hclog.NewNullLogger().
	Logger hclog.Logger
}

// Partition is one storage served under a name.
type Partition struct {
	// Storage is the backend. The server does not close it.
	Storage storage.Storage
	// ReadOnly refuses every write (Begin, NewOids, Undo, Pack) with
	// storage.ErrReadOnly, whatever the backend supports.
	ReadOnly bool
}

func (o *Options) setDefaults() error {
	if o.Name == "" {
		o.Name = "zhost"
	}
	if len(o.Partitions) == 0 {
		return fmt.Errorf("no partitions: %w", storage.ErrInvalid)
	}
	for name, p := range o.Partitions {
		if name == "" {
			return fmt.Errorf("partition with an empty name: %w", storage.ErrInvalid)
		}
		if p.Storage == nil {
			return fmt.Errorf("partition %q has no storage: %w", name, storage.ErrInvalid)
		}
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.TransactionTimeout <= 0 {
		o.TransactionTimeout = 60 * time.Second
	}
	if o.FrameTimeout <= 0 {
		o.FrameTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	if o.MaxMessageSize < wire.MinMaxMessageSize {
		o.MaxMessageSize = wire.MinMaxMessageSize
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = 2 * o.MaxMessageSize
	}
	if o.MaxInFlightBytes < o.MaxMessageSize {
		o.MaxInFlightBytes = o.MaxMessageSize
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 4 * o.MaxMessageSize
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.InvalidationLogSize <= 0 {
		o.InvalidationLogSize = 10000
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

package sdk

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zhostdb/zhost/hcl"
	"github.com/zhostdb/zhost/host/storage"
)

// badTextBackend is blockBackend whose Load of oid 77 fails with a
// message that is not valid UTF-8 (an error quoting a binary key or a
// file name, say).
type badTextBackend struct{ blockBackend }

func (b badTextBackend) Open(ctx context.Context, typ string, cfg hcl.Values) (storage.Storage, error) {
	st, err := b.blockBackend.Open(ctx, typ, cfg)
	if err != nil {
		return nil, err
	}
	return badTextStorage{st.(blockStorage)}, nil
}

type badTextStorage struct{ blockStorage }

func (s badTextStorage) Load(ctx context.Context, oid storage.Oid) (storage.Record, error) {
	if oid == 77 {
		return storage.Record{}, fmt.Errorf("no record under key \xff\xfe: %w", storage.ErrNotFound)
	}
	return s.blockStorage.Load(ctx, oid)
}

// inFlight starts a Load of oid 99 (which blocks in the plugin until its
// context ends) and returns its result channel and its cancel.
func inFlight(t *testing.T, st storage.Storage) (<-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := st.Load(ctx, 99)
		res <- err
	}()
	time.Sleep(50 * time.Millisecond) // the Load is waiting in the plugin
	return res, cancel
}

// stillInFlight checks that the Load inFlight started is untouched by
// what happened meanwhile, then ends it.
func stillInFlight(t *testing.T, res <-chan error, cancel context.CancelFunc) {
	t.Helper()
	select {
	case err := <-res:
		t.Fatalf("an unrelated call in flight failed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("the call in flight, canceled: %v", err)
	}
}

// TestCallsErrorNotUTF8: a plugin's error whose message is not valid
// UTF-8 reaches its caller with its sentinel, and does not end the Calls
// stream for the other calls in flight (a protobuf string must be UTF-8:
// the reply would not marshal).
func TestCallsErrorNotUTF8(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode callsMode
	}{{"packed", callsPacked}, {"unary", callsUnary}} {
		t.Run(mode.name, func(t *testing.T) {
			seen := make(chan context.Context, 4)
			c, _ := serveInProcess(t, &Plugin{Name: "bad", Version: "0", Backends: map[string]Backend{"block": badTextBackend{blockBackend{seen}}}})
			c.mode = mode.mode
			st, err := c.Open(context.Background(), "block", "b", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res, cancel := inFlight(t, st)
			_, err = st.Load(context.Background(), 77)
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("load with a non-UTF-8 error: %v, want ErrNotFound", err)
			}
			stillInFlight(t, res, cancel)
		})
	}
}

// TestCallsMetaNotUTF8: a transaction whose metadata is not valid UTF-8
// fails alone, as invalid, without ending the Calls stream for the other
// calls in flight.
func TestCallsMetaNotUTF8(t *testing.T) {
	seen := make(chan context.Context, 4)
	c, _ := serveInProcess(t, blockPlugin(seen))
	st, err := c.Open(context.Background(), "block", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, cancel := inFlight(t, st)
	usesStream(t, c)
	for _, meta := range []storage.TxMeta{
		{Description: "caf\xe9"},
		{User: "\xff"},
		{Extension: map[string]string{"k": "\xc3"}},
		{Extension: map[string]string{"\xc3": "v"}},
	} {
		ctx := context.Background()
		txn, err := st.Begin(ctx, meta)
		if err == nil {
			if err = txn.Store(ctx, storage.Record{Oid: 1, Data: []byte("x")}); err == nil {
				_, err = txn.(storage.OnePhaseTxn).Commit(ctx)
			}
			_ = txn.Abort(ctx)
		}
		if !errors.Is(err, storage.ErrInvalid) || errors.Is(err, ErrPluginUnavailable) {
			t.Fatalf("commit with metadata %q: %v, want ErrInvalid", meta, err)
		}
	}
	stillInFlight(t, res, cancel)
}

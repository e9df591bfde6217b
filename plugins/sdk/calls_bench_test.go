package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

// BenchmarkCallsLoad measures one Load on the Calls stream over an
// in-process connection, with a context without deadline and with one
// (a deadline adds the watch on a blocked send).
func BenchmarkCallsLoad(b *testing.B) {
	c, _ := serveInProcess(b, testPlugin())
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		b.Fatal(err)
	}
	txn, _ := st.Begin(ctx, storage.TxMeta{})
	_ = txn.Store(ctx, storage.Record{Oid: storage.RootOid, Data: make([]byte, 200)})
	if _, err := txn.(storage.OnePhaseTxn).Commit(ctx); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"background", func() (context.Context, context.CancelFunc) { return ctx, func() {} }},
		{"deadline", func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Minute) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				cctx, cancel := tc.ctx()
				if _, err := st.Load(cctx, storage.RootOid); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
		})
	}
}

// BenchmarkCallsCommit measures a one-record transaction on each
// transport over an in-process connection: one-phase (one Commit call)
// and two-phase (Vote, then Finish), the calls that take their
// transaction's turn in the plugin.
func BenchmarkCallsCommit(b *testing.B) {
	for _, m := range []struct {
		name string
		mode callsMode
	}{{"packed", callsPacked}, {"unary", callsUnary}} {
		for _, twoPhase := range []bool{false, true} {
			name := m.name + "/one-phase"
			if twoPhase {
				name = m.name + "/two-phase"
			}
			b.Run(name, func(b *testing.B) {
				c, _ := serveInProcess(b, testPlugin())
				c.mode = m.mode
				ctx := context.Background()
				st, err := c.Open(ctx, "memory", "main", nil)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				data := make([]byte, 200)
				serial := storage.ZeroTid
				for b.Loop() {
					txn, err := st.Begin(ctx, storage.TxMeta{})
					if err != nil {
						b.Fatal(err)
					}
					if err := txn.Store(ctx, storage.Record{Oid: storage.RootOid, Serial: serial, Data: data}); err != nil {
						b.Fatal(err)
					}
					if twoPhase {
						if err := txn.Vote(ctx); err != nil {
							b.Fatal(err)
						}
						serial, err = txn.Finish(ctx)
					} else {
						serial, err = txn.(storage.OnePhaseTxn).Commit(ctx)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStoreInto measures the host side of Store alone: 1000
// 182-byte records gathered into a packed batch (below the size that
// sends one), then aborted before anything is sent.
func BenchmarkStoreInto(b *testing.B) {
	c, _ := serveInProcess(b, testPlugin())
	c.mode = callsPacked
	ctx := context.Background()
	st, err := c.Open(ctx, "memory", "main", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	data := make([]byte, 182)
	for b.Loop() {
		txn, err := st.Begin(ctx, storage.TxMeta{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 1000 {
			if err := txn.Store(ctx, storage.Record{Oid: storage.Oid(i + 1), Data: data}); err != nil {
				b.Fatal(err)
			}
		}
		if err := txn.Abort(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zhostdb/zhost/host/storage"
)

func TestCommitLock(t *testing.T) {
	l := storage.NewCommitLock()
	ctx := context.Background()
	if err := l.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if l.TryLock() {
		t.Fatal("TryLock took a held lock")
	}
	// A second taker waits until its ctx ends.
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err := l.Lock(wctx)
	if !errors.Is(err, storage.ErrCommitLockTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on a held lock = %v, want ErrCommitLockTimeout and DeadlineExceeded", err)
	}
	// A waiter gets it when it is released.
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got <- l.Lock(ctx)
	}()
	time.Sleep(10 * time.Millisecond)
	l.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	l.Unlock()
	// An ended context fails even on a free lock.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := l.Lock(cctx); !errors.Is(err, storage.ErrCommitLockTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a canceled ctx = %v", err)
	}
	if !l.TryLock() {
		t.Fatal("TryLock failed on a free lock")
	}
	l.Unlock()
	l.Unlock() // unlocking a free lock is a no-op
	if !l.TryLock() {
		t.Fatal("lock unusable after a double Unlock")
	}
}

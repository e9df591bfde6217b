package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/zhostdb/zhost/host/storage"
	"github.com/zhostdb/zhost/host/wire"
)

// The invalidation log of one partition: the oids of its newest
// transactions, so a client that comes back after an absence catches up
// instead of dropping its cache.
//
// On disk (when the server has a DataDir) it is a file of
//
//	header:  "ZHINVL01" (8 bytes) | since tid (u64)
//	entry*:  payload length (u32) | tid (u64) | oid count (u32) | oids (u64 each) | CRC-32C of tid..oids (u32)
//
// all big-endian. The log is complete for every transaction with a tid
// after since. Entries are appended without fsync: a torn or lost tail is
// detected at open (bad CRC, or a last tid that differs from the storage's
// LastTid) and the log then starts afresh at the storage's LastTid, which
// costs reconnecting clients their caches but never gives them stale data.
type invLog struct {
	path    string // "" for a log kept in memory only
	f       *os.File
	max     int
	since   storage.Tid
	entries []wire.Invalidation // live entries are entries[start:]
	start   int
	onDisk  int // entries in the file, to know when to compact
	buf     []byte
	// poisoned: a transaction may have committed that the log does not
	// hold (its Finish failed and LastTid could not be read). No
	// catch-up is given until the next add restarts the log after it.
	poisoned bool
}

// poison marks the log as missing a transaction of unknown tid.
func (l *invLog) poison() { l.poisoned = true }

var invLogMagic = []byte("ZHINVL01")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// openInvLog opens (or creates) the log at path, keeping up to max
// transactions, and checks it against last, the storage's LastTid.
func openInvLog(path string, max int, last storage.Tid, logger hclog.Logger) (*invLog, error) {
	l := &invLog{path: path, max: max, since: last}
	if path == "" {
		return l, nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	case err != nil:
		return nil, fmt.Errorf("read invalidation log %s: %w", path, err)
	}
	var since storage.Tid
	var entries []wire.Invalidation
	valid := false
	if len(data) >= 16 && bytes.Equal(data[:8], invLogMagic) {
		valid = true
		since = storage.Tid(binary.BigEndian.Uint64(data[8:16]))
		entries = parseInvEntries(data[16:])
	}
	end := since
	if len(entries) > 0 {
		end = entries[len(entries)-1].Tid
	}
	switch {
	case !valid:
		if data != nil {
			logger.Warn("invalidation log unreadable: starting a new one; clients that reconnect drop their caches", "path", path)
		}
		l.entries = nil
	case end != last:
		logger.Warn("invalidation log does not end at the storage's last transaction: starting a new one; clients that reconnect drop their caches",
			"path", path, "log_last_tid", end, "storage_last_tid", last)
	default:
		l.since = since
		l.entries = entries
	}
	l.trim()
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

func parseInvEntries(b []byte) []wire.Invalidation {
	var out []wire.Invalidation
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		if n < 12 || uint64(n)+8 > uint64(len(b)) {
			break
		}
		payload := b[4 : 4+n]
		sum := binary.BigEndian.Uint32(b[4+n:])
		if crc32.Checksum(payload, crcTable) != sum {
			break
		}
		tid := storage.Tid(binary.BigEndian.Uint64(payload))
		cnt := binary.BigEndian.Uint32(payload[8:])
		if uint64(cnt)*8 != uint64(n)-12 {
			break
		}
		if len(out) > 0 && tid <= out[len(out)-1].Tid {
			break
		}
		oids := make([]storage.Oid, cnt)
		for i := range oids {
			oids[i] = storage.Oid(binary.BigEndian.Uint64(payload[12+8*i:]))
		}
		out = append(out, wire.Invalidation{Tid: tid, Oids: oids})
		b = b[8+n:]
	}
	return out
}

func (l *invLog) appendEntry(dst []byte, inv wire.Invalidation) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(inv.Tid))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(inv.Oids)))
	for _, o := range inv.Oids {
		dst = binary.BigEndian.AppendUint64(dst, uint64(o))
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start+4:], crcTable))
}

// rewrite replaces the file with the live entries (write, fsync, rename).
func (l *invLog) rewrite() error {
	if l.path == "" {
		return nil
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	b := append([]byte(nil), invLogMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.since))
	for _, inv := range l.entries[l.start:] {
		b = l.appendEntry(b, inv)
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write invalidation log: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write invalidation log %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync invalidation log %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close invalidation log %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("rename invalidation log: %w", err)
	}
	f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open invalidation log: %w", err)
	}
	l.f = f
	l.onDisk = len(l.entries) - l.start
	return nil
}

// trim keeps the newest max entries and moves since forward.
func (l *invLog) trim() {
	live := len(l.entries) - l.start
	if live > l.max {
		drop := live - l.max
		l.since = l.entries[l.start+drop-1].Tid
		l.start += drop
	}
	if l.start > l.max {
		l.entries = append([]wire.Invalidation(nil), l.entries[l.start:]...)
		l.start = 0
	}
}

// add records a committed transaction. Tids must increase.
func (l *invLog) add(tid storage.Tid, oids []storage.Oid) error {
	if l.poisoned {
		// Whatever committed unseen is before tid: start afresh here.
		return l.reset(tid)
	}
	inv := wire.Invalidation{Tid: tid, Oids: oids}
	l.entries = append(l.entries, inv)
	l.trim()
	if l.f == nil {
		return nil
	}
	if l.onDisk >= 2*l.max {
		return l.rewrite()
	}
	l.buf = l.appendEntry(l.buf[:0], inv)
	if _, err := l.f.Write(l.buf); err != nil {
		return fmt.Errorf("append to invalidation log %s: %w", l.path, err)
	}
	l.onDisk++
	return nil
}

// reset forgets every entry: the log starts at last.
func (l *invLog) reset(last storage.Tid) error {
	l.poisoned = false
	l.entries = nil
	l.start = 0
	l.since = last
	return l.rewrite()
}

// last returns the newest tid the log covers.
func (l *invLog) last() storage.Tid {
	if len(l.entries) > l.start {
		return l.entries[len(l.entries)-1].Tid
	}
	return l.since
}

// after returns the entries with tid > tid, or ok false if the log does
// not reach back that far (or tid is from the future).
func (l *invLog) after(tid storage.Tid) (out []wire.Invalidation, ok bool) {
	if l.poisoned || tid < l.since || tid > l.last() {
		return nil, false
	}
	live := l.entries[l.start:]
	i := len(live)
	for i > 0 && live[i-1].Tid > tid {
		i--
	}
	return live[i:], true
}

// touchedAfter reports whether a transaction after tid wrote oid; it
// answers true when it cannot tell (too far back or too many entries to
// scan), which makes the caller err on the safe side.
func (l *invLog) touchedAfter(oid storage.Oid, tid storage.Tid) bool {
	if l.poisoned || tid < l.since {
		return true
	}
	live := l.entries[l.start:]
	scanned := 0
	for i := len(live) - 1; i >= 0 && live[i].Tid > tid; i-- {
		if scanned++; scanned > 64 {
			return true
		}
		for _, o := range live[i].Oids {
			if o == oid {
				return true
			}
		}
	}
	return false
}

func (l *invLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("close invalidation log %s: %w", l.path, err)
	}
	return nil
}

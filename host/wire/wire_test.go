package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/zhostdb/zhost/host/storage"
)

func sampleMessages() []Message {
	meta := storage.TxMeta{User: "u", Description: "d", Extension: map[string]string{"node": "app1", "a": "b"}}
	rec := storage.Record{Oid: 7, Serial: 99, Data: []byte("hello"), Refs: []storage.Oid{1, 2}}
	return []Message{
		&Hello{Magic: Magic, Version: Version, Name: "app1"},
		&Welcome{Version: Version, MaxMessageSize: 1 << 20, Server: "zeo"},
		&Open{Partition: "main", LastTid: 42},
		&Opened{Handle: 1, Caps: CapHistory | CapUndo, LastTid: 50, Catchup: []Invalidation{{Tid: 43, Oids: []storage.Oid{1}}, {Tid: 50, Oids: []storage.Oid{2, 3}}}},
		&Close{Handle: 3},
		&Load{Handle: 1, Oid: 5},
		&LoadBefore{Handle: 1, Oid: 5, Tid: 10},
		&RecordReply{Record: rec, End: 120},
		&LoadMany{Handle: 1, Before: 0, Oids: []storage.Oid{1, 2, 3}},
		&Records{Items: []Item{{Code: CodeOK, Record: rec, End: 0}, {Code: CodeNotFound, Record: storage.Record{Oid: 9}}}},
		&NewOids{Handle: 1, N: 10},
		&Oids{Oids: []storage.Oid{5, 6}},
		&LastTid{Handle: 2},
		&TidReply{Tid: 77},
		&Vote{Handle: 1, Txn: 4, LockWaitMillis: 100, Meta: meta, Records: []storage.Record{rec, {Oid: 8, Data: []byte{}}}},
		&Finish{Handle: 1, Txn: 4},
		&Abort{Handle: 1, Txn: 4},
		&History{Handle: 1, Oid: 3, Max: 10},
		&Revisions{Revisions: []storage.Revision{{Serial: 5, Size: 10, TxMeta: meta}}},
		&Iterate{Handle: 1, Start: 1, Stop: 0, MaxTxns: 100, MaxBytes: 1 << 20},
		&TxnPage{Txns: []storage.TxRecords{{TxInfo: storage.TxInfo{Tid: 5, TxMeta: meta, Oids: []storage.Oid{7}}, Records: []storage.Record{rec, {Oid: 9, Serial: 5}}}}, More: true, Next: 6},
		&UndoLog{Handle: 1, Max: 20},
		&TxInfos{Txns: []storage.TxInfo{{Tid: 5, TxMeta: meta, Oids: []storage.Oid{7}}}},
		&Undo{Handle: 1, Tid: 5, Meta: meta},
		&Undone{Tid: 6, Oids: []storage.Oid{7}},
		&Committed{Tid: 8, Collected: []storage.Oid{9, 10}},
		&Pack{Handle: 1, Tid: 5},
		&Ping{},
		&OK{},
		&Error{Code: CodeConflict, Message: "conflict", Conflicts: []storage.Conflict{{Oid: 1, Expected: 2, Actual: 3}}},
		&Invalidate{Handle: 1, Tid: 9, Oids: []storage.Oid{1, 2}},
		&Reset{Handle: 1, LastTid: 9},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream []byte
	msgs := sampleMessages()
	for i, m := range msgs {
		stream = AppendFrame(stream, uint32(i), m)
	}
	fr := FrameReader{R: bufio.NewReader(bytes.NewReader(stream)), Max: DefaultMaxMessageSize}
	for i, want := range msgs {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.ID != uint32(i) || f.Kind != want.Kind() {
			t.Fatalf("frame %d: id %d kind %s, want %d %s", i, f.ID, f.Kind, i, want.Kind())
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatalf("decode %s: %v", f.Kind, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", f.Kind, got, want)
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestNilAndEmptyData(t *testing.T) {
	for _, data := range [][]byte{nil, {}} {
		f, _, err := DecodeFrame(EncodeFrame(1, &RecordReply{Record: storage.Record{Oid: 1, Data: data}}), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		got := m.(*RecordReply).Record.Data
		if (got == nil) != (data == nil) {
			t.Errorf("data %#v came back as %#v", data, got)
		}
	}
}

func TestBadFrames(t *testing.T) {
	tooBig := []byte{0, 0x10, 0, 0, byte(KindPing), 0, 0, 0, 1}
	if _, _, err := DecodeFrame(tooBig, 4096); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v, want ErrTooLarge", err)
	}
	short := []byte{0, 0, 0, 2, 1, 1}
	if _, _, err := DecodeFrame(short, 4096); !errors.Is(err, ErrMalformed) {
		t.Errorf("length below header: %v, want ErrMalformed", err)
	}
	half := EncodeFrame(1, &Load{Handle: 1, Oid: 2})
	if _, _, err := DecodeFrame(half[:len(half)-1], 4096); err != io.ErrUnexpectedEOF {
		t.Errorf("half frame: %v, want io.ErrUnexpectedEOF", err)
	}
	// A count that claims more elements than bytes must fail without
	// allocating for them.
	lying := EncodeFrame(1, &Oids{})
	lying[len(lying)-1] = 0xff
	f, _, err := DecodeFrame(lying, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(f); !errors.Is(err, ErrMalformed) {
		t.Errorf("lying count: %v, want ErrMalformed", err)
	}
	trailing := append(EncodeFrame(1, &Ping{}), 0)
	trailing[3]++
	f, _, err = DecodeFrame(trailing, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(f); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v, want ErrMalformed", err)
	}
	unknown := EncodeFrame(1, &Ping{})
	unknown[4] = 200
	f, _, _ = DecodeFrame(unknown, 4096)
	if _, err := Decode(f); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown kind: %v, want ErrMalformed", err)
	}
}

func TestErrorIdentity(t *testing.T) {
	sentinels := []error{storage.ErrNotFound, storage.ErrReadOnly, storage.ErrNotSupported, storage.ErrClosed,
		storage.ErrUndoConflict, storage.ErrCommitLockTimeout, storage.ErrInvalid, ErrUnknownPartition, ErrTooLarge}
	for _, s := range sentinels {
		e := ErrorFrom(errors.Join(errors.New("context"), s))
		if got := e.Err(); !errors.Is(got, s) {
			t.Errorf("%v did not survive the wire: %v (code %d)", s, got, e.Code)
		}
	}
	ce := &storage.ConflictError{Conflicts: []storage.Conflict{{Oid: 1, Expected: 2, Actual: 3}, {Oid: 4, Expected: 5, Actual: 6}}}
	got := ErrorFrom(ce).Err()
	var back *storage.ConflictError
	if !errors.As(got, &back) || !reflect.DeepEqual(back, ce) || !errors.Is(got, storage.ErrConflict) {
		t.Errorf("conflict came back as %#v", got)
	}
}

// TestPeekLength: the next frame's size is known before anything is
// consumed, and bad lengths fail as ReadFrame's do.
func TestPeekLength(t *testing.T) {
	frame := EncodeFrame(7, &Ping{})
	stream := append(append([]byte{}, frame...), frame...)
	fr := FrameReader{R: bufio.NewReader(bytes.NewReader(stream)), Max: DefaultMaxMessageSize}
	for i := range 2 {
		n, err := fr.PeekLength()
		if err != nil || n != len(frame) {
			t.Fatalf("frame %d: PeekLength = %d, %v; want %d", i, n, err, len(frame))
		}
		if f, err := fr.ReadFrame(); err != nil || f.ID != 7 {
			t.Fatalf("frame %d after peek: %+v, %v", i, f, err)
		}
	}
	if _, err := fr.PeekLength(); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	fr = FrameReader{R: bufio.NewReader(bytes.NewReader(huge)), Max: MinMaxMessageSize}
	if _, err := fr.PeekLength(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v, want ErrTooLarge", err)
	}
	fr = FrameReader{R: bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 1})), Max: MinMaxMessageSize}
	if _, err := fr.PeekLength(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short length: %v, want ErrMalformed", err)
	}
	fr = FrameReader{R: bufio.NewReader(bytes.NewReader([]byte{0, 0})), Max: MinMaxMessageSize}
	if _, err := fr.PeekLength(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("torn length: %v, want io.ErrUnexpectedEOF", err)
	}
}

package wire

import (
	"fmt"

	"github.com/zhostdb/zhost/host/storage"
)

// Kind says what a frame carries. Requests (client to server) are 1-63,
// replies (server to client, echoing the request id) are 64-95, pushes
// (server to client, request id 0) are 96-127.
type Kind uint8

// Requests.
const (
	KindHello      Kind = 1
	KindOpen       Kind = 2
	KindLoad       Kind = 3
	KindLoadBefore Kind = 4
	KindLoadMany   Kind = 5
	KindNewOids    Kind = 6
	KindLastTid    Kind = 7
	KindVote       Kind = 8
	KindFinish     Kind = 9
	KindAbort      Kind = 10
	KindHistory    Kind = 11
	KindIterate    Kind = 12
	KindUndoLog    Kind = 13
	KindUndo       Kind = 14
	KindPack       Kind = 15
	KindPing       Kind = 16
	KindClose      Kind = 17
	KindCommit     Kind = 18
)

// Replies.
const (
	KindError     Kind = 64
	KindOK        Kind = 65
	KindWelcome   Kind = 66
	KindOpened    Kind = 67
	KindRecord    Kind = 68
	KindRecords   Kind = 69
	KindOids      Kind = 70
	KindTid       Kind = 71
	KindRevisions Kind = 72
	KindTxnPage   Kind = 73
	KindTxInfos   Kind = 74
	KindUndone    Kind = 75
	KindCommitted Kind = 76
)

// Pushes.
const (
	KindInvalidate Kind = 96
	KindReset      Kind = 97
)

// IsRequest reports whether k is a request kind.
func (k Kind) IsRequest() bool { return k >= 1 && k < 64 }

// IsPush reports whether k is a push kind.
func (k Kind) IsPush() bool { return k >= 96 && k < 128 }

var kindNames = map[Kind]string{
	KindHello: "Hello", KindOpen: "Open", KindLoad: "Load", KindLoadBefore: "LoadBefore",
	KindLoadMany: "LoadMany", KindNewOids: "NewOids", KindLastTid: "LastTid", KindVote: "Vote",
	KindFinish: "Finish", KindAbort: "Abort", KindHistory: "History", KindIterate: "Iterate",
	KindUndoLog: "UndoLog", KindUndo: "Undo", KindPack: "Pack", KindPing: "Ping", KindClose: "Close", KindCommit: "Commit",
	KindError: "Error", KindOK: "OK", KindWelcome: "Welcome", KindOpened: "Opened",
	KindRecord: "Record", KindRecords: "Records", KindOids: "Oids", KindTid: "Tid",
	KindRevisions: "Revisions", KindTxnPage: "TxnPage", KindTxInfos: "TxInfos", KindUndone: "Undone",
	KindCommitted:  "Committed",
	KindInvalidate: "Invalidate", KindReset: "Reset",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is the body of one frame kind.
type Message interface {
	Kind() Kind
	// Encode appends the body.
	Encode(e *Encoder)
	// Decode reads the body; the caller checks d.Finish().
	Decode(d *Decoder)
}

// New returns an empty message of kind k, or nil for an unknown kind.
func New(k Kind) Message {
	switch k {
	case KindHello:
		return &Hello{}
	case KindOpen:
		return &Open{}
	case KindLoad:
		return &Load{}
	case KindLoadBefore:
		return &LoadBefore{}
	case KindLoadMany:
		return &LoadMany{}
	case KindNewOids:
		return &NewOids{}
	case KindLastTid:
		return &LastTid{}
	case KindVote:
		return &Vote{}
	case KindFinish:
		return &Finish{}
	case KindCommit:
		return &Commit{}
	case KindAbort:
		return &Abort{}
	case KindHistory:
		return &History{}
	case KindIterate:
		return &Iterate{}
	case KindUndoLog:
		return &UndoLog{}
	case KindUndo:
		return &Undo{}
	case KindPack:
		return &Pack{}
	case KindPing:
		return &Ping{}
	case KindClose:
		return &Close{}
	case KindError:
		return &Error{}
	case KindOK:
		return &OK{}
	case KindWelcome:
		return &Welcome{}
	case KindOpened:
		return &Opened{}
	case KindRecord:
		return &RecordReply{}
	case KindRecords:
		return &Records{}
	case KindOids:
		return &Oids{}
	case KindTid:
		return &TidReply{}
	case KindRevisions:
		return &Revisions{}
	case KindTxnPage:
		return &TxnPage{}
	case KindTxInfos:
		return &TxInfos{}
	case KindUndone:
		return &Undone{}
	case KindCommitted:
		return &Committed{}
	case KindInvalidate:
		return &Invalidate{}
	case KindReset:
		return &Reset{}
	}
	return nil
}

// Decode decodes a frame's body into the message its kind names. Byte
// strings in the result alias f.Body. Errors match ErrMalformed.
func Decode(f Frame) (Message, error) {
	m := New(f.Kind)
	if m == nil {
		return nil, fmt.Errorf("unknown frame kind %d: %w", uint8(f.Kind), ErrMalformed)
	}
	d := NewDecoder(f.Body)
	m.Decode(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("decode %s: %w", f.Kind, err)
	}
	return m, nil
}

// Hello opens a connection; the server answers Welcome or Error.
type Hello struct {
	Magic   uint32
	Version uint16
	// Name identifies the client in the server's log.
	Name string
}

func (*Hello) Kind() Kind { return KindHello }
func (m *Hello) Encode(e *Encoder) {
	e.U32(m.Magic)
	e.U16(m.Version)
	e.String(m.Name)
}
func (m *Hello) Decode(d *Decoder) {
	m.Magic = d.U32()
	m.Version = d.U16()
	m.Name = d.String()
}

// Welcome answers Hello.
type Welcome struct {
	Version        uint16
	MaxMessageSize uint32
	Server         string
}

func (*Welcome) Kind() Kind { return KindWelcome }
func (m *Welcome) Encode(e *Encoder) {
	e.U16(m.Version)
	e.U32(m.MaxMessageSize)
	e.String(m.Server)
}
func (m *Welcome) Decode(d *Decoder) {
	m.Version = d.U16()
	m.MaxMessageSize = d.U32()
	m.Server = d.String()
}

// Open binds a partition to a handle on this connection and subscribes
// the connection to its invalidations. LastTid is the last tid whose
// invalidations the client applied (ZeroTid for a client without a
// cache); the server answers with what changed since.
type Open struct {
	Partition string
	LastTid   storage.Tid
}

func (*Open) Kind() Kind { return KindOpen }
func (m *Open) Encode(e *Encoder) {
	e.String(m.Partition)
	e.U64(uint64(m.LastTid))
}
func (m *Open) Decode(d *Decoder) {
	m.Partition = d.String()
	m.LastTid = storage.Tid(d.U64())
}

// Capability bits in Opened.Caps.
const (
	CapHistory  uint8 = 1 << 0
	CapUndo     uint8 = 1 << 1
	CapPack     uint8 = 1 << 2
	CapReadOnly uint8 = 1 << 3
)

// CapsToBits packs capabilities into a byte.
func CapsToBits(c storage.Capabilities) uint8 {
	var b uint8
	if c.History {
		b |= CapHistory
	}
	if c.Undo {
		b |= CapUndo
	}
	if c.Pack {
		b |= CapPack
	}
	if c.ReadOnly {
		b |= CapReadOnly
	}
	return b
}

// BitsToCaps unpacks capabilities.
func BitsToCaps(b uint8) storage.Capabilities {
	return storage.Capabilities{
		History:  b&CapHistory != 0,
		Undo:     b&CapUndo != 0,
		Pack:     b&CapPack != 0,
		ReadOnly: b&CapReadOnly != 0,
	}
}

// Invalidation is one committed transaction's oids.
type Invalidation struct {
	Tid  storage.Tid
	Oids []storage.Oid
}

// Opened answers Open. If Resync is true the client must drop its whole
// cache (its LastTid is past the invalidation log's horizon, or newer
// than the server's); otherwise Catchup lists, oldest first, every
// transaction after the client's LastTid. Either way the client's
// LastTid becomes LastTid, and every later transaction of the partition
// reaches it as an Invalidate push (or, for its own commits, a Finish
// reply), in commit order.
type Opened struct {
	Handle  uint32
	Caps    uint8
	LastTid storage.Tid
	Resync  bool
	Catchup []Invalidation
}

func (*Opened) Kind() Kind { return KindOpened }
func (m *Opened) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U8(m.Caps)
	e.U64(uint64(m.LastTid))
	e.Bool(m.Resync)
	e.U32(uint32(len(m.Catchup)))
	for _, inv := range m.Catchup {
		e.U64(uint64(inv.Tid))
		e.Oids(inv.Oids)
	}
}
func (m *Opened) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Caps = d.U8()
	m.LastTid = storage.Tid(d.U64())
	m.Resync = d.Bool()
	n := d.count(12, "catch-up")
	for i := 0; i < n && d.Err() == nil; i++ {
		var inv Invalidation
		inv.Tid = storage.Tid(d.U64())
		inv.Oids = d.Oids()
		m.Catchup = append(m.Catchup, inv)
	}
}

// Close unbinds a partition handle.
type Close struct{ Handle uint32 }

func (*Close) Kind() Kind          { return KindClose }
func (m *Close) Encode(e *Encoder) { e.U32(m.Handle) }
func (m *Close) Decode(d *Decoder) { m.Handle = d.U32() }

// Load asks for the current revision of an oid; the reply is Record.
type Load struct {
	Handle uint32
	Oid    storage.Oid
}

func (*Load) Kind() Kind { return KindLoad }
func (m *Load) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Oid))
}
func (m *Load) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Oid = storage.Oid(d.U64())
}

// LoadBefore asks for the revision current just before Tid; the reply
// is Record with End set.
type LoadBefore struct {
	Handle uint32
	Oid    storage.Oid
	Tid    storage.Tid
}

func (*LoadBefore) Kind() Kind { return KindLoadBefore }
func (m *LoadBefore) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Oid))
	e.U64(uint64(m.Tid))
}
func (m *LoadBefore) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Oid = storage.Oid(d.U64())
	m.Tid = storage.Tid(d.U64())
}

// RecordReply answers Load and LoadBefore. End is the serial of the
// revision that replaced this one, ZeroTid if it is current.
type RecordReply struct {
	Record storage.Record
	End    storage.Tid
}

func (*RecordReply) Kind() Kind { return KindRecord }
func (m *RecordReply) Encode(e *Encoder) {
	e.Record(m.Record)
	e.U64(uint64(m.End))
}
func (m *RecordReply) Decode(d *Decoder) {
	m.Record = d.Record()
	m.End = storage.Tid(d.U64())
}

// LoadMany loads several oids in one round trip: current revisions if
// Before is ZeroTid, else the revisions current just before Before. The
// reply is Records with one item per oid, in order.
type LoadMany struct {
	Handle uint32
	Before storage.Tid
	Oids   []storage.Oid
}

func (*LoadMany) Kind() Kind { return KindLoadMany }
func (m *LoadMany) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Before))
	e.Oids(m.Oids)
}
func (m *LoadMany) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Before = storage.Tid(d.U64())
	m.Oids = d.Oids()
}

// Item is one answer in Records: Code is CodeOK with a record, or the
// error code of that oid alone (CodeNotFound, CodeNotSupported, ...).
type Item struct {
	Code   Code
	Record storage.Record
	End    storage.Tid
}

// Records answers LoadMany.
type Records struct {
	Items []Item
}

func (*Records) Kind() Kind { return KindRecords }
func (m *Records) Encode(e *Encoder) {
	e.U32(uint32(len(m.Items)))
	for _, it := range m.Items {
		e.U8(uint8(it.Code))
		if it.Code == CodeOK {
			e.Record(it.Record)
			e.U64(uint64(it.End))
		} else {
			e.U64(uint64(it.Record.Oid))
		}
	}
}
func (m *Records) sizeHint() int {
	n := 4
	for _, it := range m.Items {
		n += 1 + 8
		if it.Code == CodeOK {
			n += recordSize(it.Record)
		}
	}
	return n
}
func (m *Records) Decode(d *Decoder) {
	n := d.count(9, "record")
	m.Items = make([]Item, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		var it Item
		it.Code = Code(d.U8())
		if it.Code == CodeOK {
			it.Record = d.Record()
			it.End = storage.Tid(d.U64())
		} else {
			it.Record.Oid = storage.Oid(d.U64())
		}
		m.Items = append(m.Items, it)
	}
}

// NewOids allocates N oids; the reply is Oids.
type NewOids struct {
	Handle uint32
	N      uint32
}

func (*NewOids) Kind() Kind { return KindNewOids }
func (m *NewOids) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.N)
}
func (m *NewOids) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.N = d.U32()
}

// Oids answers NewOids.
type Oids struct{ Oids []storage.Oid }

func (*Oids) Kind() Kind          { return KindOids }
func (m *Oids) Encode(e *Encoder) { e.Oids(m.Oids) }
func (m *Oids) Decode(d *Decoder) { m.Oids = d.Oids() }

// LastTid asks for the backend's newest tid; the reply is Tid.
type LastTid struct{ Handle uint32 }

func (*LastTid) Kind() Kind          { return KindLastTid }
func (m *LastTid) Encode(e *Encoder) { e.U32(m.Handle) }
func (m *LastTid) Decode(d *Decoder) { m.Handle = d.U32() }

// TidReply answers LastTid and Finish.
type TidReply struct{ Tid storage.Tid }

func (*TidReply) Kind() Kind          { return KindTid }
func (m *TidReply) Encode(e *Encoder) { e.U64(uint64(m.Tid)) }
func (m *TidReply) Decode(d *Decoder) { m.Tid = storage.Tid(d.U64()) }

// Vote carries a whole transaction: the server begins it on the backend,
// stores every record, and votes, waiting at most LockWaitMillis for the
// commit lock (0: the server's default). The reply is OK (the
// transaction holds the partition's commit lock until Finish or Abort)
// or Error (the transaction is gone). Txn is the client's name for the
// transaction, unique among its open transactions on the connection.
type Vote struct {
	Handle         uint32
	Txn            uint32
	LockWaitMillis uint32
	Meta           storage.TxMeta
	Records        []storage.Record
}

func (*Vote) Kind() Kind { return KindVote }
func (m *Vote) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.Txn)
	e.U32(m.LockWaitMillis)
	e.Meta(m.Meta)
	e.U32(uint32(len(m.Records)))
	for _, r := range m.Records {
		e.Record(r)
	}
}
func (m *Vote) sizeHint() int {
	n := 12 + metaSize(m.Meta) + 4
	for _, r := range m.Records {
		n += recordSize(r)
	}
	return n
}
func (m *Vote) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Txn = d.U32()
	m.LockWaitMillis = d.U32()
	m.Meta = d.Meta()
	n := d.count(24, "record")
	m.Records = make([]storage.Record, 0, n)
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Records = append(m.Records, d.Record())
	}
}

// Commit carries a whole transaction that votes and finishes in one
// step (one-phase commit, for a transaction touching one partition): the
// fields are Vote's. The reply is Finish's (Tid, or Committed when the
// commit collected objects), or Error: a vote failure (a conflict names
// every conflicting oid) leaves nothing behind; any other error leaves the
// outcome unknown and the server resets every client's cache.
type Commit Vote

func (*Commit) Kind() Kind          { return KindCommit }
func (m *Commit) Encode(e *Encoder) { (*Vote)(m).Encode(e) }
func (m *Commit) sizeHint() int     { return (*Vote)(m).sizeHint() }
func (m *Commit) Decode(d *Decoder) { (*Vote)(m).Decode(d) }

// Finish commits a voted transaction; the reply is Tid. The client
// applies the reply as the invalidation of its own transaction: it comes
// on the stream after every earlier transaction's Invalidate.
type Finish struct {
	Handle uint32
	Txn    uint32
}

func (*Finish) Kind() Kind { return KindFinish }
func (m *Finish) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.Txn)
}
func (m *Finish) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Txn = d.U32()
}

// Abort drops a transaction (voted or not); the reply is OK, also for an
// unknown transaction.
type Abort struct {
	Handle uint32
	Txn    uint32
}

func (*Abort) Kind() Kind { return KindAbort }
func (m *Abort) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.Txn)
}
func (m *Abort) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Txn = d.U32()
}

// History asks for up to Max revisions of Oid, newest first; the reply
// is Revisions.
type History struct {
	Handle uint32
	Oid    storage.Oid
	Max    uint32
}

func (*History) Kind() Kind { return KindHistory }
func (m *History) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Oid))
	e.U32(m.Max)
}
func (m *History) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Oid = storage.Oid(d.U64())
	m.Max = d.U32()
}

// Revisions answers History.
type Revisions struct{ Revisions []storage.Revision }

func (*Revisions) Kind() Kind { return KindRevisions }
func (m *Revisions) Encode(e *Encoder) {
	e.U32(uint32(len(m.Revisions)))
	for _, r := range m.Revisions {
		e.U64(uint64(r.Serial))
		e.U64(uint64(r.Size))
		e.Meta(r.TxMeta)
	}
}
func (m *Revisions) Decode(d *Decoder) {
	n := d.count(28, "revision")
	for i := 0; i < n && d.Err() == nil; i++ {
		var r storage.Revision
		r.Serial = storage.Tid(d.U64())
		r.Size = int(d.U64() & (1<<62 - 1))
		r.TxMeta = d.Meta()
		m.Revisions = append(m.Revisions, r)
	}
}

// Iterate asks for one page of transactions with Start <= tid < Stop
// (Stop ZeroTid: no bound), at most MaxTxns of them and about MaxBytes
// of records (at least one transaction per page). The reply is TxnPage;
// the client asks again from TxnPage.Next while More is set.
type Iterate struct {
	Handle   uint32
	Start    storage.Tid
	Stop     storage.Tid
	MaxTxns  uint32
	MaxBytes uint32
}

func (*Iterate) Kind() Kind { return KindIterate }
func (m *Iterate) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Start))
	e.U64(uint64(m.Stop))
	e.U32(m.MaxTxns)
	e.U32(m.MaxBytes)
}
func (m *Iterate) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Start = storage.Tid(d.U64())
	m.Stop = storage.Tid(d.U64())
	m.MaxTxns = d.U32()
	m.MaxBytes = d.U32()
}

func encodeTxInfo(e *Encoder, t storage.TxInfo) {
	e.U64(uint64(t.Tid))
	e.Meta(t.TxMeta)
	e.Oids(t.Oids)
}

func decodeTxInfo(d *Decoder) storage.TxInfo {
	var t storage.TxInfo
	t.Tid = storage.Tid(d.U64())
	t.TxMeta = d.Meta()
	t.Oids = d.Oids()
	return t
}

// TxnPage answers Iterate.
type TxnPage struct {
	Txns []storage.TxRecords
	More bool
	Next storage.Tid
}

func (*TxnPage) Kind() Kind { return KindTxnPage }
func (m *TxnPage) Encode(e *Encoder) {
	e.U32(uint32(len(m.Txns)))
	for _, t := range m.Txns {
		encodeTxInfo(e, t.TxInfo)
		e.U32(uint32(len(t.Records)))
		for _, r := range t.Records {
			e.Record(r)
		}
	}
	e.Bool(m.More)
	e.U64(uint64(m.Next))
}
func (m *TxnPage) Decode(d *Decoder) {
	n := d.count(28, "transaction")
	for i := 0; i < n && d.Err() == nil; i++ {
		var t storage.TxRecords
		t.TxInfo = decodeTxInfo(d)
		k := d.count(24, "record")
		for j := 0; j < k && d.Err() == nil; j++ {
			t.Records = append(t.Records, d.Record())
		}
		m.Txns = append(m.Txns, t)
	}
	m.More = d.Bool()
	m.Next = storage.Tid(d.U64())
}

// UndoLog asks for up to Max undoable transactions; the reply is TxInfos.
type UndoLog struct {
	Handle uint32
	Max    uint32
}

func (*UndoLog) Kind() Kind { return KindUndoLog }
func (m *UndoLog) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.Max)
}
func (m *UndoLog) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Max = d.U32()
}

// TxInfos answers UndoLog.
type TxInfos struct{ Txns []storage.TxInfo }

func (*TxInfos) Kind() Kind { return KindTxInfos }
func (m *TxInfos) Encode(e *Encoder) {
	e.U32(uint32(len(m.Txns)))
	for _, t := range m.Txns {
		encodeTxInfo(e, t)
	}
}
func (m *TxInfos) Decode(d *Decoder) {
	n := d.count(24, "transaction")
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Txns = append(m.Txns, decodeTxInfo(d))
	}
}

// Undo undoes transaction Tid; the reply is Undone. Like Finish, the
// reply is the client's invalidation for the new transaction.
type Undo struct {
	Handle uint32
	Tid    storage.Tid
	Meta   storage.TxMeta
}

func (*Undo) Kind() Kind { return KindUndo }
func (m *Undo) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Tid))
	e.Meta(m.Meta)
}
func (m *Undo) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Tid = storage.Tid(d.U64())
	m.Meta = d.Meta()
}

// Undone answers Undo.
type Undone struct {
	Tid  storage.Tid
	Oids []storage.Oid
}

func (*Undone) Kind() Kind { return KindUndone }
func (m *Undone) Encode(e *Encoder) {
	e.U64(uint64(m.Tid))
	e.Oids(m.Oids)
}
func (m *Undone) Decode(d *Decoder) {
	m.Tid = storage.Tid(d.U64())
	m.Oids = d.Oids()
}

// Pack packs the partition at Tid; the reply is OK. Every client of the
// partition (the packing one included, before the reply) gets a Reset.
type Pack struct {
	Handle uint32
	Tid    storage.Tid
}

func (*Pack) Kind() Kind { return KindPack }
func (m *Pack) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Tid))
}
func (m *Pack) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Tid = storage.Tid(d.U64())
}

// Ping asks for an OK; clients use it to measure the round trip.
type Ping struct{}

func (*Ping) Kind() Kind        { return KindPing }
func (*Ping) Encode(e *Encoder) {}
func (*Ping) Decode(d *Decoder) {}

// OK is the empty reply.
type OK struct{}

func (*OK) Kind() Kind        { return KindOK }
func (*OK) Encode(e *Encoder) {}
func (*OK) Decode(d *Decoder) {}

// Invalidate pushes one committed transaction of the partition bound to
// Handle: the client drops (or closes the validity of) its cached
// revisions of Oids and sets its LastTid to Tid.
type Invalidate struct {
	Handle uint32
	Tid    storage.Tid
	Oids   []storage.Oid
}

func (*Invalidate) Kind() Kind { return KindInvalidate }
func (m *Invalidate) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.Tid))
	e.Oids(m.Oids)
}
func (m *Invalidate) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.Tid = storage.Tid(d.U64())
	m.Oids = d.Oids()
}

// Reset pushes "drop your whole cache" for the partition bound to Handle
// (after a pack removed objects). LastTid is the partition's newest tid.
type Reset struct {
	Handle  uint32
	LastTid storage.Tid
}

func (*Reset) Kind() Kind { return KindReset }
func (m *Reset) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U64(uint64(m.LastTid))
}
func (m *Reset) Decode(d *Decoder) {
	m.Handle = d.U32()
	m.LastTid = storage.Tid(d.U64())
}

// Committed answers Finish when the commit also removed objects: the
// backend collected them because nothing referenced them any more
// (storage.CollectingTxn, packless). The committer drops Collected from
// its cache as it would for an invalidation, and caches its stored
// revisions as for a Tid reply. A Finish that collected nothing is
// answered with Tid.
type Committed struct {
	Tid       storage.Tid
	Collected []storage.Oid
}

func (*Committed) Kind() Kind { return KindCommitted }
func (m *Committed) Encode(e *Encoder) {
	e.U64(uint64(m.Tid))
	e.Oids(m.Collected)
}
func (m *Committed) Decode(d *Decoder) {
	m.Tid = storage.Tid(d.U64())
	m.Collected = d.Oids()
}

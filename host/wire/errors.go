package wire

import (
	"context"
	"errors"

	"github.com/zhostdb/zhost/host/storage"
)

// Code is an error code carried by Error replies and Records items. It
// keeps the identity of the storage contract's sentinel errors across the
// network.
type Code uint8

// Error codes.
const (
	CodeOK                Code = 0
	CodeInternal          Code = 1 // any other error; the message says what
	CodeNotFound          Code = 2 // storage.ErrNotFound
	CodeConflict          Code = 3 // storage.ErrConflict, with the conflict list
	CodeReadOnly          Code = 4 // storage.ErrReadOnly
	CodeNotSupported      Code = 5 // storage.ErrNotSupported
	CodeClosed            Code = 6 // storage.ErrClosed
	CodeUndoConflict      Code = 7 // storage.ErrUndoConflict
	CodeCommitLockTimeout Code = 8 // storage.ErrCommitLockTimeout
	CodeInvalid           Code = 9 // storage.ErrInvalid
	CodeUnknownPartition  Code = 10
	CodeMalformed         Code = 11
	CodeTooLarge          Code = 12
	CodeProtocol          Code = 13 // bad magic or version, request before Hello
	CodeShutdown          Code = 14 // the server is shutting down
	CodeUnknownHandle     Code = 15
	CodeUnknownTxn        Code = 16 // the transaction was aborted (timeout) or never voted
	CodeCanceled          Code = 17 // the server gave up: deadline or cancellation
)

// Protocol-level sentinel errors, beside the storage contract's.
var (
	// ErrUnknownPartition: Open named a partition the server does not
	// serve.
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrProtocol: the peer broke the protocol (bad magic, version
	// mismatch, request before Hello).
	ErrProtocol = errors.New("protocol error")
	// ErrShutdown: the server is shutting down.
	ErrShutdown = errors.New("server shutting down")
	// ErrUnknownHandle: a request named a partition handle that is not
	// open on the connection.
	ErrUnknownHandle = errors.New("unknown partition handle")
	// ErrUnknownTxn: Finish named a transaction the server does not hold
	// (never voted, or aborted because its client exceeded the
	// transaction timeout).
	ErrUnknownTxn = errors.New("unknown transaction")
)

var codeErrors = map[Code]error{
	CodeNotFound:          storage.ErrNotFound,
	CodeConflict:          storage.ErrConflict,
	CodeReadOnly:          storage.ErrReadOnly,
	CodeNotSupported:      storage.ErrNotSupported,
	CodeClosed:            storage.ErrClosed,
	CodeUndoConflict:      storage.ErrUndoConflict,
	CodeCommitLockTimeout: storage.ErrCommitLockTimeout,
	CodeInvalid:           storage.ErrInvalid,
	CodeUnknownPartition:  ErrUnknownPartition,
	CodeMalformed:         ErrMalformed,
	CodeTooLarge:          ErrTooLarge,
	CodeProtocol:          ErrProtocol,
	CodeShutdown:          ErrShutdown,
	CodeUnknownHandle:     ErrUnknownHandle,
	CodeUnknownTxn:        ErrUnknownTxn,
	CodeCanceled:          context.DeadlineExceeded,
}

// order matters: ErrCommitLockTimeout errors also match the context's
// error, and the more specific sentinel must win.
var codeOrder = []Code{
	CodeConflict, CodeCommitLockTimeout, CodeUndoConflict, CodeNotFound, CodeReadOnly,
	CodeNotSupported, CodeClosed, CodeInvalid, CodeUnknownPartition, CodeMalformed,
	CodeTooLarge, CodeProtocol, CodeShutdown, CodeUnknownHandle, CodeUnknownTxn,
}

// CodeOf returns the code whose sentinel err matches, CodeCanceled for a
// context error, or CodeInternal.
func CodeOf(err error) Code {
	for _, c := range codeOrder {
		if errors.Is(err, codeErrors[c]) {
			return c
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeCanceled
	}
	return CodeInternal
}

// Error is the error reply.
type Error struct {
	Code      Code
	Message   string
	Conflicts []storage.Conflict
}

// ErrorFrom converts err into an Error reply.
func ErrorFrom(err error) *Error {
	e := &Error{Code: CodeOf(err), Message: err.Error()}
	var ce *storage.ConflictError
	if errors.As(err, &ce) {
		e.Code = CodeConflict
		e.Conflicts = ce.Conflicts
	}
	return e
}

func (*Error) Kind() Kind { return KindError }
func (m *Error) Encode(e *Encoder) {
	e.U8(uint8(m.Code))
	e.String(m.Message)
	e.U32(uint32(len(m.Conflicts)))
	for _, c := range m.Conflicts {
		e.U64(uint64(c.Oid))
		e.U64(uint64(c.Expected))
		e.U64(uint64(c.Actual))
	}
}
func (m *Error) Decode(d *Decoder) {
	m.Code = Code(d.U8())
	m.Message = d.String()
	n := d.count(24, "conflict")
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Conflicts = append(m.Conflicts, storage.Conflict{
			Oid: storage.Oid(d.U64()), Expected: storage.Tid(d.U64()), Actual: storage.Tid(d.U64()),
		})
	}
}

// Err returns the Go error the reply stands for: a *storage.ConflictError
// for conflicts, else a *RemoteError that matches its code's sentinel
// with errors.Is.
func (m *Error) Err() error {
	if m.Code == CodeConflict && len(m.Conflicts) > 0 {
		return &storage.ConflictError{Conflicts: m.Conflicts}
	}
	return &RemoteError{Code: m.Code, Message: m.Message}
}

// RemoteError is an error the server reported.
type RemoteError struct {
	Code    Code
	Message string
}

func (e *RemoteError) Error() string { return "server: " + e.Message }

// Is matches the sentinel of the error's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeErrors[e.Code]
	if !ok {
		return false
	}
	if e.Code == CodeCanceled {
		return target == context.DeadlineExceeded || target == context.Canceled
	}
	if e.Code == CodeCommitLockTimeout && target == context.DeadlineExceeded {
		return true
	}
	return s == target
}

// ItemErr returns the error an Records item's code stands for (nil for
// CodeOK).
func ItemErr(c Code, oid storage.Oid) error {
	if c == CodeOK {
		return nil
	}
	return &RemoteError{Code: c, Message: "oid " + oid.String() + ": " + codeText(c)}
}

func codeText(c Code) string {
	if s, ok := codeErrors[c]; ok {
		return s.Error()
	}
	return "internal error"
}

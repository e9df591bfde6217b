package app

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/zhostdb/zhost/host/db"
	"github.com/zhostdb/zhost/host/storage"
)

// TxRequest is the body of POST /_tx.
type TxRequest struct {
	Ops []TxOp `json:"ops"`
}

// TxOp is one operation of a transaction.
type TxOp struct {
	// Op is "put", "delete" or "incr".
	Op   string `json:"op"`
	Path string `json:"path"`
	// Data is the document a put stores.
	Data map[string]any `json:"data,omitempty"`
	// IfMatch, if set, is the serial (or ETag) the object must be at
	// ("*": must exist).
	IfMatch string `json:"if_match,omitempty"`
	// By is an incr's increment (default 1; negative decrements).
	By *int64 `json:"by,omitempty"`
}

// TxResponse is the answer of POST /_tx.
type TxResponse struct {
	// Tid is the transaction's tid; absent when no op changed anything.
	Tid     string     `json:"tid,omitempty"`
	Results []OpResult `json:"results"`
}

// OpResult is what one op did.
type OpResult struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	URL  string `json:"url,omitempty"`
	// Serial is the object's serial after the transaction (put, incr).
	Serial  string `json:"serial,omitempty"`
	Created bool   `json:"created,omitempty"`
	// Value is a counter's value as this transaction left it. Concurrent
	// increments merge, so the stored value may already be higher.
	Value *int64 `json:"value,omitempty"`
}

// opError names the op that failed.
type opError struct {
	index int
	op    TxOp
	err   error
}

func (e *opError) Error() string {
	return fmt.Sprintf("op %d (%s %s): %v", e.index, e.op.Op, e.op.Path, e.err)
}

func (e *opError) Unwrap() error { return e.err }

// opState is what one op did, for the response.
type opState struct {
	path    string
	created bool
	changed bool // the op wrote its object: its serial is the tid
	before  storage.Tid
	value   *int64
	// obj is the object the op put or incremented (nil for a delete):
	// its partition's commit tid is its new serial.
	obj db.Object
}

func (a *App) serveTx(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, a, "POST")
		return
	}
	var req TxRequest
	if err := a.readJSONStrict(w, r, &req); err != nil {
		a.writeError(w, r, statusOfBody(err), "", err)
		return
	}
	if len(req.Ops) == 0 || len(req.Ops) > MaxTxOps {
		a.writeError(w, r, http.StatusBadRequest, "", fmt.Errorf("a transaction needs 1 to %d ops, got %d", MaxTxOps, len(req.Ops)))
		return
	}
	for i := range req.Ops {
		op := &req.Ops[i]
		p, err := cleanPath(op.Path)
		if err == nil && p == "/" {
			err = fmt.Errorf("the root folder cannot be changed: %w", db.ErrInvalidPath)
		}
		if err == nil {
			err = a.checkReserved(p, true)
		}
		if err != nil {
			a.writeDBError(w, r, op.Path, &opError{index: i, op: *op, err: err})
			return
		}
		op.Path = p
		switch op.Op {
		case "put":
			if op.Data == nil {
				op.Data = map[string]any{}
			}
			if op.Data, err = normalizeMap(op.Data, 1); err != nil {
				a.writeDBError(w, r, op.Path, &opError{index: i, op: *op, err: err})
				return
			}
		case "delete", "incr":
		default:
			a.writeError(w, r, http.StatusBadRequest, op.Path, &opError{index: i, op: *op,
				err: fmt.Errorf("unknown op %q (want put, delete or incr)", op.Op)})
			return
		}
	}

	var states []opState
	var main bool
	var last *db.Tx
	tid, err := a.db.Update(r.Context(), func(tx *db.Tx) error {
		states, main, last = states[:0], false, tx
		for i, op := range req.Ops {
			st, inMainPart, err := applyOp(r.Context(), tx, op)
			if err != nil {
				return &opError{index: i, op: op, err: err}
			}
			// Only a write in the main partition makes the commit's
			// tid a main tid (Commit returns another partition's tid
			// when main wrote nothing).
			main = main || inMainPart && st.changed
			states = append(states, st)
		}
		return nil
	})
	if err != nil {
		a.writeWriteError(w, r, "", err)
		return
	}
	if main {
		a.setWriteTid(w, r, tid)
	}
	resp := TxResponse{Results: make([]OpResult, len(req.Ops))}
	if tid != storage.ZeroTid {
		resp.Tid = tid.String()
	}
	for i, op := range req.Ops {
		st := states[i]
		res := OpResult{Op: op.Op, Path: op.Path, Created: st.created, Value: st.value}
		if op.Op != "delete" {
			res.URL = a.urlFor(r, op.Path)
			serial := st.before
			if st.changed && tid != storage.ZeroTid {
				// The op's own partition's tid: Update returns the
				// main partition's, and a mounted partition's
				// objects have serials of their own.
				serial = tid
				if t := last.CommitTid(st.obj); t != storage.ZeroTid {
					serial = t
				}
			}
			res.Serial = serial.String()
		}
		resp.Results[i] = res
	}
	writeJSON(w, http.StatusOK, resp)
}

// applyOp runs one op inside tx; it reports whether the op's object is in
// the main partition.
func applyOp(ctx context.Context, tx *db.Tx, op TxOp) (opState, bool, error) {
	st := opState{path: op.Path}
	switch op.Op {
	case "put":
		res, err := putDocument(ctx, tx, op.Path, op.Data, op.IfMatch, false)
		st.created, st.before, st.changed, st.obj = res.created, res.before, res.changed, res.obj
		return st, res.main, err
	case "delete":
		res, err := deleteAt(ctx, tx, op.Path, op.IfMatch)
		st.before, st.changed = res.before, res.changed
		return st, res.main, err
	case "incr":
		by := int64(1)
		if op.By != nil {
			by = *op.By
		}
		t, err := locate(ctx, tx, op.Path, true)
		if err != nil {
			return st, t.main, err
		}
		if t.obj == nil {
			if err := checkPreconditions(op.Path, op.IfMatch, false, storage.ZeroTid); err != nil {
				return st, t.main, err
			}
			st.created, st.changed = true, true
			v := by
			st.value = &v
			c := db.NewCounter(by)
			st.obj = c
			return st, t.main, t.parent.Create(ctx, t.name, c)
		}
		c, ok := t.obj.(*db.Counter)
		if !ok {
			return st, t.main, fmt.Errorf("%s is a %s, not a counter: %w", op.Path, t.obj.TypeName(), db.ErrWrongType)
		}
		st.before, st.obj = c.Serial(), c
		if err := checkPreconditions(op.Path, op.IfMatch, false, st.before); err != nil {
			return st, t.main, err
		}
		if op.IfMatch != "" {
			// Counters merge concurrent increments; a compare-and-set
			// must conflict instead.
			if err := tx.RequireCurrent(c); err != nil {
				return st, t.main, err
			}
		}
		if cur := c.Value(); by > 0 && cur > math.MaxInt64-by || by < 0 && cur < math.MinInt64-by {
			return st, t.main, &badRequestError{msg: fmt.Sprintf("incr %s by %d: the counter (%d) would overflow", op.Path, by, cur)}
		}
		v := c.Add(by)
		st.value, st.changed = &v, by != 0 || op.IfMatch != "" // RequireCurrent wrote it
		return st, t.main, nil
	}
	return st, false, fmt.Errorf("unknown op %q", op.Op)
}

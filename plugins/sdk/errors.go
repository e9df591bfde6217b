package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/zhostdb/zhost/host/storage"
	pb "github.com/zhostdb/zhost/plugins/proto"
)

// sentinels maps each storage sentinel to its wire kind and gRPC code. The
// code is for other-language clients reading the status; the kinds in the
// detail are what restores the identity on the host side.
var sentinels = []struct {
	err  error
	kind pb.ErrorDetail_Kind
	code codes.Code
}{
	{storage.ErrNotFound, pb.ErrorDetail_NOT_FOUND, codes.NotFound},
	{storage.ErrConflict, pb.ErrorDetail_CONFLICT, codes.Aborted},
	{storage.ErrReadOnly, pb.ErrorDetail_READ_ONLY, codes.PermissionDenied},
	{storage.ErrNotSupported, pb.ErrorDetail_NOT_SUPPORTED, codes.Unimplemented},
	{storage.ErrClosed, pb.ErrorDetail_CLOSED, codes.FailedPrecondition},
	{storage.ErrUndoConflict, pb.ErrorDetail_UNDO_CONFLICT, codes.Aborted},
	{storage.ErrCommitLockTimeout, pb.ErrorDetail_COMMIT_LOCK_TIMEOUT, codes.DeadlineExceeded},
	{storage.ErrInvalid, pb.ErrorDetail_INVALID, codes.InvalidArgument},
}

// toStatus converts an error returned by a backend or mount function into
// a gRPC status error that carries every sentinel it matches, the
// conflicting oids of a *storage.ConflictError, and a context error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	detail := &pb.ErrorDetail{}
	code := codes.Unknown
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			detail.Kinds = append(detail.Kinds, s.kind)
			if code == codes.Unknown {
				code = s.code
			}
		}
	}
	var ce *storage.ConflictError
	if errors.As(err, &ce) {
		for _, c := range ce.Conflicts {
			detail.Conflicts = append(detail.Conflicts, &pb.Conflict{Oid: uint64(c.Oid), Expected: uint64(c.Expected), Actual: uint64(c.Actual)})
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		detail.Context = "canceled"
		if code == codes.Unknown {
			code = codes.Canceled
		}
	case errors.Is(err, context.DeadlineExceeded):
		detail.Context = "deadline_exceeded"
		if code == codes.Unknown {
			code = codes.DeadlineExceeded
		}
	}
	// A status message travels in a protobuf string (the status detail,
	// a Calls stream reply), which must be UTF-8 or nothing marshals.
	st := status.New(code, strings.ToValidUTF8(err.Error(), "\uFFFD"))
	if len(detail.Kinds) > 0 || detail.Context != "" {
		if withDetail, derr := st.WithDetails(detail); derr == nil {
			st = withDetail
		}
	}
	return st.Err()
}

// remoteError is an error that came back from a plugin. It keeps the
// plugin's message and matches the sentinels the plugin's error matched.
type remoteError struct {
	msg     string
	matches []error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	for _, m := range e.matches {
		if m == target {
			return true
		}
	}
	return false
}

// fromStatus converts an error from a gRPC call to plugin into the error
// the host sees: sentinel identity restored, a *storage.ConflictError
// rebuilt with every oid, the plugin named, and a broken connection turned
// into ErrPluginUnavailable. alive reports whether the plugin process is
// still running; ctx is the caller's context.
func fromStatus(ctx context.Context, plugin, op string, err error, alive bool) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("plugin %q: %s: %w", plugin, op, err)
	}
	var detail *pb.ErrorDetail
	for _, d := range st.Details() {
		if x, ok := d.(*pb.ErrorDetail); ok {
			detail = x
			break
		}
	}
	if detail == nil {
		// No detail: the status came from gRPC itself, not from the
		// plugin's code.
		if !alive {
			return fmt.Errorf("plugin %q: %s: plugin process exited: %w", plugin, op, ErrPluginUnavailable)
		}
		if cerr := contextEnded(ctx); cerr != nil {
			return fmt.Errorf("plugin %q: %s: %s: %w", plugin, op, st.Message(), cerr)
		}
		if st.Code() == codes.Unavailable {
			return fmt.Errorf("plugin %q: %s: %s: %w", plugin, op, st.Message(), ErrPluginUnavailable)
		}
		return fmt.Errorf("plugin %q: %s: %s", plugin, op, st.Message())
	}
	re := &remoteError{msg: st.Message()}
	for _, k := range detail.GetKinds() {
		for _, s := range sentinels {
			if s.kind == k {
				re.matches = append(re.matches, s.err)
			}
		}
	}
	switch detail.GetContext() {
	case "canceled":
		re.matches = append(re.matches, context.Canceled)
	case "deadline_exceeded":
		re.matches = append(re.matches, context.DeadlineExceeded)
	}
	if len(detail.GetConflicts()) > 0 {
		ce := &storage.ConflictError{}
		for _, c := range detail.GetConflicts() {
			ce.Conflicts = append(ce.Conflicts, storage.Conflict{Oid: storage.Oid(c.GetOid()), Expected: storage.Tid(c.GetExpected()), Actual: storage.Tid(c.GetActual())})
		}
		return fmt.Errorf("plugin %q: %s: %w", plugin, op, ce)
	}
	return fmt.Errorf("plugin %q: %w", plugin, re)
}

// deadlineSlack is how early the plugin may give up on a call before the
// host's own timer fires: the plugin gets the host's deadline, less the
// transit time, and cancels the stream (RST_STREAM) the moment it passes.
const deadlineSlack = 100 * time.Millisecond

// contextEnded returns the context's error if it has ended or its
// deadline is about to pass, else nil.
func contextEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < deadlineSlack {
		return context.DeadlineExceeded
	}
	return nil
}

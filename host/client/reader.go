package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/zhostdb/zhost/host/wire"
	"github.com/zhostdb/zhost/internal/walltrace"
)

// Reading a link: callers lead, a background reader covers the rest.
//
// Every frame the server sends, replies and pushed invalidations alike,
// is read and applied by one goroutine at a time, in stream order:
// whoever holds the link's read token. That order is what keeps the
// cache consistent (see doc.go); which goroutine reads does not matter
// to it.
//
// A caller whose request is out takes the token when it is free and
// reads until its own reply has come, applying every frame before it on
// the way. Its reply then reaches it without a hand-over between
// goroutines. Such a hand-over readies the caller and, on an otherwise
// idle process, wakes a second thread for the idle P (a futex wake, and
// on a VM whose idle vCPUs halt, an interrupt to a halted vCPU): about a
// third of a read miss between two processes (docs/performance.md).
//
// The background reader (readLoop) holds the token the rest of the time:
// when the link starts, while callers that found the token taken wait
// for their replies, and when the link has had no calls for leadIdle,
// so that pushes to an idle client are applied and a dead server is
// noticed. It gives the token up as soon as a reply leaves no call
// pending, so a caller that follows at once reads its own reply, and it
// stays away while calls keep coming. A leader that returns while other
// calls are pending nudges it to read for them.
//
// A leader waits for a frame with a read deadline (its context's, or
// CallTimeout), and its context's cancellation moves that deadline into
// the past ("kicks" it), but only between frames: a frame that has begun
// is read whole, within CallTimeout, or the link fails. Either way the
// stream stays intact for the next reader. The price: a caller whose
// context ends while a frame is half read returns once that frame is in,
// which from a server that stalls in mid-frame is CallTimeout later (the
// link then fails).

// leadIdle is how long the link goes without calls before the background
// reader reads again. Pushes that arrive while no one reads wait at most
// this long (or until the next call, which applies them before its
// reply).
const leadIdle = time.Millisecond

// errWait: the wait for the next frame was cut short (deadline or kick)
// before any of it arrived; the stream is intact.
var errWait = errors.New("no frame before the deadline")

// kickTime is the deadline a kick sets: long past.
var kickTime = time.Unix(1, 0)

// readFrame reads and applies one frame, waiting for its start until
// deadline (zero: no limit). replied reports whether it was a reply. An
// error other than errWait has failed the link.
func (l *link) readFrame(deadline time.Time) (replied bool, err error) {
	if l.fr.R.Buffered() == 0 {
		if err := l.awaitFrame(deadline); err != nil {
			return false, err
		}
	}
	if !l.fr.Buffered() {
		// The rest of a frame that has begun: bounded, so a server that
		// stalls in mid-frame cannot hang a caller, and never cut short
		// by a kick, which would break the stream for everyone.
		l.setDeadline(time.Now().Add(l.c.opts.CallTimeout))
	}
	f, err := l.fr.ReadFrame()
	if walltrace.On {
		walltrace.Mark("c.read")
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("read: the server sent part of a frame and nothing more for %s: %w", l.c.opts.CallTimeout, err)
		} else {
			err = fmt.Errorf("read: %w", err)
		}
		l.fail(err)
		return false, err
	}
	m, err := wire.Decode(f)
	if err != nil {
		err = fmt.Errorf("server sent a bad frame: %w", err)
		l.fail(err)
		return false, err
	}
	if f.Kind.IsPush() {
		l.push(m)
		return false, nil
	}
	l.pmu.Lock()
	pc := l.pending[f.ID]
	delete(l.pending, f.ID)
	l.pmu.Unlock()
	if pc == nil {
		if e, ok := m.(*wire.Error); ok && f.ID == 0 {
			err = fmt.Errorf("server closed the connection: %w", e.Err())
			l.fail(err)
			return false, err
		}
		return true, nil // the caller gave up (its context ended)
	}
	var r reply
	if e, ok := m.(*wire.Error); ok {
		r.err = e.Err()
	} else {
		r.msg = m
	}
	if pc.apply != nil {
		pc.apply(r.msg, r.err)
	}
	pc.ch <- r
	return true, nil
}

// awaitFrame waits until the next frame starts to arrive.
func (l *link) awaitFrame(deadline time.Time) error {
	l.dmu.Lock()
	if l.kicked {
		l.dmu.Unlock()
		return errWait
	}
	l.midFrame = false
	l.setDeadlineLocked(deadline)
	l.dmu.Unlock()
	_, err := l.fr.R.Peek(1)
	l.dmu.Lock()
	l.midFrame = true
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// Passed, or kicked: either way the connection's deadline is
		// in the past now.
		l.dset = kickTime
		err = errWait
	}
	l.dmu.Unlock()
	if err != nil && err != errWait {
		err = fmt.Errorf("read: %w", err)
		l.fail(err)
	}
	return err
}

func (l *link) setDeadline(t time.Time) {
	l.dmu.Lock()
	l.setDeadlineLocked(t)
	l.dmu.Unlock()
}

func (l *link) setDeadlineLocked(t time.Time) {
	if !t.Equal(l.dset) {
		l.conn.SetReadDeadline(t)
		l.dset = t
	}
}

// kick cuts short leader gen's wait for a frame (its context ended). A
// frame already begun is read whole first.
func (l *link) kick(gen uint64) {
	l.dmu.Lock()
	if l.gen == gen {
		l.kicked = true
		if !l.midFrame {
			l.conn.SetReadDeadline(kickTime)
			l.dset = kickTime
		}
	}
	l.dmu.Unlock()
}

// lead reads the link until pc's reply has come, if the read token is
// free; led is false if it was not. A leader whose context ends or whose
// deadline passes first returns err (pc's reply, if it comes later, is
// dropped, as for a follower that gives up).
func (l *link) lead(ctx context.Context, pc *pendingCall, deadline time.Time) (r reply, led bool, err error) {
	select {
	case <-l.tok:
	default:
		return reply{}, false, nil
	}
	l.dmu.Lock()
	l.gen++
	gen := l.gen
	l.kicked = false
	l.dmu.Unlock()
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { l.kick(gen) })
	}
	defer func() {
		if stop != nil {
			stop()
		}
		l.release()
	}()
	for {
		select {
		case r := <-pc.ch:
			return r, true, nil
		default:
		}
		if err := ctx.Err(); err != nil {
			return reply{}, true, err
		}
		if !time.Now().Before(deadline) {
			// The connection's read deadline only cuts a wait for the
			// start of a frame: under a steady stream whose reads end
			// inside frames, the leader never waits for one (and each
			// frame's rest gets CallTimeout anew), so look at the clock.
			return reply{}, true, errWait
		}
		if _, err := l.readFrame(deadline); err == errWait {
			if err := ctx.Err(); err != nil {
				return reply{}, true, err
			}
			return reply{}, true, errWait
		} else if err != nil {
			// The link failed; fail gave pc its error, unless pc's
			// reply came first.
			return <-pc.ch, true, nil
		}
	}
}

// release hands the read token back after a lead.
func (l *link) release() {
	l.dmu.Lock()
	l.gen++ // a late kick of this leader must not touch the next reader
	l.kicked = false
	l.dmu.Unlock()
	l.led.Add(1)
	l.tok <- struct{}{}
	if l.pendingLen() > 0 {
		l.nudge()
	}
}

// nudge asks the background reader to take the token now if it is free.
func (l *link) nudge() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) pendingLen() int {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	return len(l.pending)
}

// readLoop is the background reader. It holds the read token when it
// starts.
func (l *link) readLoop() {
	idle := time.NewTimer(leadIdle)
	idle.Stop()
	for {
		// Holding the token: read until a reply leaves no call pending.
		for {
			replied, err := l.readFrame(time.Time{})
			if err == errWait {
				continue
			}
			if err != nil {
				return
			}
			if replied && l.pendingLen() == 0 {
				break
			}
		}
		// Nudges until now were for a reader that was already reading.
		select {
		case <-l.wake:
		default:
		}
		seen := l.led.Load()
		l.tok <- struct{}{}
		if l.pendingLen() > 0 {
			// A call that found the token taken just before it was
			// given up: take it back for that call.
			l.nudge()
		}
		for {
			idle.Reset(leadIdle)
			select {
			case <-idle.C:
				if n := l.led.Load(); n != seen {
					seen = n // callers are reading: stay away
					continue
				}
			case <-l.wake:
				idle.Stop()
			case <-l.dead:
				idle.Stop()
				return
			}
			select {
			case <-l.tok:
			default:
				seen = l.led.Load() // a caller leads
				continue
			}
			break
		}
	}
}

package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Protocol constants.
const (
	// Magic opens every Hello: "zhos" in ASCII. A peer that does not send
	// it is not speaking this protocol.
	Magic uint32 = 0x7a686f73
	// Version is the protocol version this package speaks. A server
	// answers a Hello with a different version with an Error of code
	// CodeProtocol and closes the connection.
	Version uint16 = 1
	// HeaderSize is the size of a frame header: length (4), kind (1),
	// request id (4).
	HeaderSize = 9
	// DefaultMaxMessageSize is the default limit on a frame's length
	// field (64 MiB).
	DefaultMaxMessageSize = 64 << 20
	// MinMaxMessageSize is the smallest limit a peer may set.
	MinMaxMessageSize = 4 << 10
)

// ErrTooLarge: a frame's length exceeds the receiver's limit.
var ErrTooLarge = errors.New("message too large")

// Frame is one unit on the stream: a kind, the request id it belongs to
// (0 for a server push) and the body, whose layout the kind decides.
type Frame struct {
	Kind Kind
	ID   uint32
	Body []byte
}

// sizeHinter is a message whose encoded body can be large; sizeHint
// is its encoded size (exact or slightly over), so AppendFrame grows
// the buffer once.
type sizeHinter interface{ sizeHint() int }

// AppendFrame appends a whole frame carrying m to dst and returns the
// extended slice.
func AppendFrame(dst []byte, id uint32, m Message) []byte {
	start := len(dst)
	if h, ok := m.(sizeHinter); ok {
		// One allocation of the right size instead of doubling through
		// a large body: a 1000-record Commit encoded into a new link's
		// buffer otherwise copies and faults in about twice its size.
		dst = slices.Grow(dst, HeaderSize+h.sizeHint())
	}
	dst = append(dst, 0, 0, 0, 0, byte(m.Kind()), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+5:], id)
	e := Encoder{B: dst}
	m.Encode(&e)
	dst = e.B
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// EncodeFrame returns a new frame carrying m.
func EncodeFrame(id uint32, m Message) []byte {
	return AppendFrame(make([]byte, 0, 64), id, m)
}

// DecodeFrame splits one frame off the front of b. It returns
// io.ErrUnexpectedEOF if b holds only part of a frame, an error matching
// ErrTooLarge if the length exceeds max, and ErrMalformed if the length is
// shorter than a header. The frame's body aliases b.
func DecodeFrame(b []byte, max int) (f Frame, rest []byte, err error) {
	if len(b) < 4 {
		return Frame{}, b, io.ErrUnexpectedEOF
	}
	n, err := checkLength(binary.BigEndian.Uint32(b), max)
	if err != nil {
		return Frame{}, b, err
	}
	if len(b) < 4+n {
		return Frame{}, b, io.ErrUnexpectedEOF
	}
	f = Frame{Kind: Kind(b[4]), ID: binary.BigEndian.Uint32(b[5:9]), Body: b[9 : 4+n : 4+n]}
	return f, b[4+n:], nil
}

func checkLength(n uint32, max int) (int, error) {
	if n < HeaderSize-4 {
		return 0, fmt.Errorf("frame length %d is shorter than a header: %w", n, ErrMalformed)
	}
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("frame of %d bytes exceeds the limit of %d: %w", n, max, ErrTooLarge)
	}
	return int(n), nil
}

// FrameReader reads frames from a buffered stream.
type FrameReader struct {
	R   *bufio.Reader
	Max int
}

// Buffered reports whether a whole frame is already buffered, so reading
// it will not block.
func (fr *FrameReader) Buffered() bool {
	n := fr.R.Buffered()
	if n < 4 {
		return false
	}
	h, _ := fr.R.Peek(4)
	return uint64(binary.BigEndian.Uint32(h))+4 <= uint64(n)
}

// PeekLength waits for the next frame's length field and returns the
// frame's size on the wire (length field included), without consuming
// anything: a reader that bounds the memory of frames in flight decides
// whether to read the frame before its body is allocated. Errors are
// ReadFrame's: io.EOF at a clean end of stream, ErrTooLarge or
// ErrMalformed for a bad length, or the underlying read error.
func (fr *FrameReader) PeekLength() (int, error) {
	h, err := fr.R.Peek(4)
	if err != nil {
		if len(h) > 0 && errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read frame header: %w", io.ErrUnexpectedEOF)
		}
		return 0, err
	}
	n, err := checkLength(binary.BigEndian.Uint32(h), fr.Max)
	if err != nil {
		return 0, err
	}
	return 4 + n, nil
}

// ReadFrame reads the next frame. Its body is a fresh allocation the
// caller owns. Errors: io.EOF at a clean end of stream, an error matching
// ErrTooLarge or ErrMalformed for a bad length (the stream cannot be
// resynchronized after either), or the underlying read error.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(fr.R, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("read frame header: %w", err)
		}
		return Frame{}, err
	}
	n, err := checkLength(binary.BigEndian.Uint32(h[:4]), fr.Max)
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Kind: Kind(h[4]), ID: binary.BigEndian.Uint32(h[5:9])}
	if n > HeaderSize-4 {
		body, err := readBody(fr.R, n-(HeaderSize-4))
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, fmt.Errorf("read frame body: %w", err)
		}
		f.Body = body
	}
	return f, nil
}

// bodyChunk is how much of a body is allocated before its bytes arrive:
// a peer that announces a large frame must send it to make the reader
// allocate it (at most twice what arrived).
const bodyChunk = 1 << 20

func readBody(r io.Reader, size int) ([]byte, error) {
	if size <= bodyChunk {
		b := make([]byte, size)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, bodyChunk)
	for len(b) < size {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(size, 2*cap(b))-len(b))
		}
		m, err := io.ReadFull(r, b[len(b):min(size, cap(b))])
		b = b[:len(b)+m]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

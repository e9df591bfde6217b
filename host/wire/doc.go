// Package wire is the zhost storage protocol between host/server and
// host/client (layers 4 and 5 of zhost): frames, message bodies and error
// codes. docs/protocol.md is the published specification; this package is
// its Go rendering and the two must agree.
//
// A frame is a big-endian uint32 length (of what follows), a kind byte, a
// uint32 request id, and a body whose layout the kind decides. A client
// numbers its requests; the server answers each with a reply frame echoing
// the id, in any order, so many requests are in flight on one connection.
// The server also pushes invalidations (request id 0) on the same stream,
// so a client that applies frames in arrival order never holds data newer
// than the invalidations it has applied.
//
// Encoding a request:
//
//	buf := wire.AppendFrame(nil, 7, &wire.Load{Handle: h, Oid: oid})
//
// Decoding on the other side:
//
//	fr := wire.FrameReader{R: bufio.NewReader(conn), Max: wire.DefaultMaxMessageSize}
//	f, err := fr.ReadFrame()
//	msg, err := wire.Decode(f) // *wire.Load
//
// Decoding never panics and never allocates more than the frame's size on
// any input (FuzzDecode checks it); every malformed body is an error
// matching ErrMalformed.
package wire

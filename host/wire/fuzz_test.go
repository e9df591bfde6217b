package wire

import (
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame splitter and the body
// decoders: they must return an error or a message, never panic, and a
// decoded message must encode back to a frame that decodes again.
func FuzzDecode(f *testing.F) {
	for i, m := range sampleMessages() {
		f.Add(EncodeFrame(uint32(i), m))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 5, 1, 0, 0, 0, 1})
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for range 64 {
			fr, rest, err := DecodeFrame(b, 1<<16)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			b = rest
			m, err := Decode(fr)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode error does not match ErrMalformed: %v", err)
				}
				continue
			}
			again, _, err := DecodeFrame(EncodeFrame(fr.ID, m), 1<<30)
			if err != nil {
				t.Fatalf("re-encoded frame: %v", err)
			}
			if _, err := Decode(again); err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", m.Kind(), err)
			}
		}
	})
}

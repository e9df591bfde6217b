package hcl

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"250ms": 250 * time.Millisecond, "30s": 30 * time.Second, "20m": 20 * time.Minute,
		"1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, " 5s ": 5 * time.Second, "0s": 0,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "20", "-1s", "20 minutes", "d", "1d-1h", "99999999999d", "1.5d", "5x", "9223372036854775807d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 20 * time.Minute: "20m", 90 * time.Minute: "1h30m", time.Hour: "1h", 250 * time.Millisecond: "250ms",
		7 * 24 * time.Hour: "7d", 36 * time.Hour: "1d12h", 90 * time.Second: "1m30s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("round trip of %v: %v, %v", d, back, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "100": 100, "100B": 100, "512KiB": 512 << 10, "64MiB": 64 << 20, "64M": 64 << 20, "1GiB": 1 << 30,
		"1TiB": 1 << 40, "64MB": 64e6, "1.5GiB": 3 << 29, "2 KiB": 2048, "1KB": 1000,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "8XB", "1.3B", "1e3", "0x10", "+5", "99999999TiB", "NaNMiB", "InfB", "1_000"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %v, want an error", in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 100: "100B", 64 << 20: "64MiB", 1536 << 10: "1536KiB", 1 << 40: "1TiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	for _, in := range []string{"127.0.0.1:9100", ":9100", "0.0.0.0:0", "[::1]:80", "db1.internal:65535", "localhost:8080"} {
		if err := checkAddress(in); err != nil {
			t.Errorf("checkAddress(%q) = %v", in, err)
		}
	}
	for _, in := range []string{"localhost", "127.0.0.1:", "127.0.0.1:65536", "::1:80", "[nope]:80", "bad host:80", "a..b:80", "-a:80", "1.2.3.4:+80", "h:-1"} {
		if err := checkAddress(in); err == nil {
			t.Errorf("checkAddress(%q) = nil, want an error", in)
		}
	}
}

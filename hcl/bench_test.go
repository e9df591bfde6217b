package hcl

import (
	"os"
	"path/filepath"
	"testing"

	hcl2 "github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// BenchmarkParse measures parse+decode+validate of the canonical and the
// full example; BenchmarkParseSyntaxOnly is the baseline: HCL's own parse
// of the same bytes, which every config load pays anyway. The ratio is
// what this package adds.
func BenchmarkParse(b *testing.B) {
	for _, f := range []string{"../examples/cluster.hcl", "testdata/valid/full.hcl"} {
		src, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, diags := Parse(src, f, testOptions()); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

func BenchmarkParseSyntaxOnly(b *testing.B) {
	for _, f := range []string{"../examples/cluster.hcl", "testdata/valid/full.hcl"} {
		src, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, diags := hclsyntax.ParseConfig(src, f, hcl2.InitialPos); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

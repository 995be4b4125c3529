package codec

import (
	"fmt"
	"testing"
)

// BenchmarkCodec measures each codec on 128 KiB blocks (the default block
// size) of text, a binary and random data. Compare with
// `go test -run XXX -bench Codec ./codec/`.
func BenchmarkCodec(b *testing.B) {
	c := corpus(b)
	const bs = 128 << 10
	for _, kind := range []string{"text", "binary", "random"} {
		in := c[kind]
		for len(in) < bs {
			in = append(in, in...)
		}
		in = in[:bs]
		for _, id := range All() {
			z, _ := Compress(id, 0, nil, in)
			b.Run(fmt.Sprintf("%s/%s/compress", kind, id), func(b *testing.B) {
				b.SetBytes(bs)
				b.ReportAllocs()
				dst := make([]byte, 0, 2*bs)
				for i := 0; i < b.N; i++ {
					if _, err := Compress(id, 0, dst[:0], in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(z))/bs, "ratio")
			})
			b.Run(fmt.Sprintf("%s/%s/decompress", kind, id), func(b *testing.B) {
				b.SetBytes(bs)
				b.ReportAllocs()
				dst := make([]byte, 0, bs)
				for i := 0; i < b.N; i++ {
					if _, err := Decompress(id, dst[:0], z, bs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Package codec holds the CPU compression codecs accelfs stores blocks with.
//
// Terms:
//
//   - algorithm (ID): a compression format with a stable numeric id. The id is
//     written into every stored block record, so the values below never change
//     meaning; new formats get new ids.
//   - level: an algorithm-specific effort setting; 0 always means the codec's
//     default. NormalizeLevel maps 0 to the concrete default and rejects
//     out-of-range values.
//   - raw length: the exact size a block decodes to. The block store records it,
//     and Decompress fails (ErrCorrupt) unless the input decodes to exactly that
//     many bytes, so a corrupt or hostile payload can neither return wrong-sized
//     data nor make the decoder allocate more than the recorded length.
//
// Formats: lz4 is the LZ4 block format (github.com/pierrec/lz4/v4); zstd is a
// single zstd frame (github.com/klauspost/compress/zstd); deflate, zlib and gzip
// are RFC 1951, 1950 and 1952 streams (github.com/klauspost/compress). The last
// three are what a HiSilicon ZIP device writes, so any block the hardware wrote
// decodes here and vice versa.
//
// Buffer convention: destination first, results appended to it (dst, src).
// Every function is safe for concurrent use; encoders and decoders are pooled.
package codec

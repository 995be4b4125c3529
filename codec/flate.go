package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
)

// appender is an io.Writer that appends to a slice; the compressors write
// straight into the caller's dst through it.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// flateWriter is the common shape of the three writers.
type flateWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// writerPools[format][level] pools writers, which are large to build.
var writerPools [Gzip + 1][10]sync.Pool

func newFlateWriter(id ID, level int, w io.Writer) (flateWriter, error) {
	switch id {
	case Deflate:
		return flate.NewWriter(w, level)
	case Zlib:
		return zlib.NewWriterLevel(w, level)
	default:
		return gzip.NewWriterLevel(w, level)
	}
}

func flateCompress(id ID, level int, dst, src []byte) ([]byte, error) {
	a := &appender{b: dst}
	pool := &writerPools[id][level]
	w, _ := pool.Get().(flateWriter)
	if w == nil {
		var err error
		if w, err = newFlateWriter(id, level, a); err != nil {
			return dst, fmt.Errorf("%s writer: %w", id, err)
		}
	} else {
		w.Reset(a)
	}
	if _, err := w.Write(src); err != nil {
		return dst, fmt.Errorf("%s compress: %w", id, err)
	}
	if err := w.Close(); err != nil {
		return dst, fmt.Errorf("%s compress: %w", id, err)
	}
	w.Reset(nil) // drop the reference to dst before pooling
	pool.Put(w)
	return a.b, nil
}

// Readers are pooled per format; zlib and gzip readers are built from their
// first input because their constructors parse the header.
var readerPools [Gzip + 1]sync.Pool

type flateReader interface {
	io.Reader
	reset(r *bytes.Reader) error
}

type deflateR struct{ r io.ReadCloser }

func (d *deflateR) Read(p []byte) (int, error) { return d.r.Read(p) }
func (d *deflateR) reset(r *bytes.Reader) error {
	return d.r.(flate.Resetter).Reset(r, nil)
}

type zlibR struct{ r io.ReadCloser }

func (z *zlibR) Read(p []byte) (int, error) { return z.r.Read(p) }
func (z *zlibR) reset(r *bytes.Reader) error {
	return z.r.(zlib.Resetter).Reset(r, nil)
}

type gzipR struct{ r *gzip.Reader }

func (g *gzipR) Read(p []byte) (int, error) { return g.r.Read(p) }
func (g *gzipR) reset(r *bytes.Reader) error {
	if err := g.r.Reset(r); err != nil {
		return err
	}
	g.r.Multistream(false)
	return nil
}

func getReader(id ID, br *bytes.Reader) (flateReader, error) {
	if r, ok := readerPools[id].Get().(flateReader); ok {
		if err := r.reset(br); err != nil {
			readerPools[id].Put(r)
			return nil, err
		}
		return r, nil
	}
	switch id {
	case Deflate:
		return &deflateR{flate.NewReader(br)}, nil
	case Zlib:
		r, err := zlib.NewReader(br)
		if err != nil {
			return nil, err
		}
		return &zlibR{r}, nil
	default:
		r, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		r.Multistream(false)
		return &gzipR{r}, nil
	}
}

// flateDecompress fills out exactly and insists the stream ends right there:
// a stream that is longer, shorter, fails its checksum or has trailing bytes
// is corrupt.
func flateDecompress(id ID, out, src []byte) error {
	br := bytes.NewReader(src) // an io.ByteReader, so the decoder never reads ahead
	r, err := getReader(id, br)
	if err != nil {
		return err
	}
	defer readerPools[id].Put(r)
	if _, err := io.ReadFull(r, out); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	// Reading on to EOF makes zlib and gzip verify their trailers.
	var one [1]byte
	n, err := r.Read(one[:])
	for i := 0; n == 0 && err == nil && i < 8; i++ { // bounded: no reader may stall us
		n, err = r.Read(one[:])
	}
	if n != 0 {
		return fmt.Errorf("stream longer than %d bytes", len(out))
	}
	if err != io.EOF {
		return err
	}
	if br.Len() != 0 {
		return fmt.Errorf("%d trailing bytes after the stream", br.Len())
	}
	return nil
}

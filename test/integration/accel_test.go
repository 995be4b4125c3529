package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// newCompressor is how the accel mode (ACCELFS_TEST_ACCEL) enters the
// in-process mounts of the suite: it returns the engine, its metrics for
// the stats document and a Closer run after the store is closed. Every mode
// goes through the session layer as `accelfs mount` does: "cpu" (CPU engine
// only), "emu" (an emulated hisi_zip-0 plus the CPU), "auto" (the host's
// uacce devices, if any, plus the CPU) or a device name. Server-process
// mounts pass the mode as `--accel MODE` instead.
func newCompressor(mode string) (blockstore.Compressor, func() any, io.Closer, error) {
	var opts []session.Option
	var closers []io.Closer
	switch mode {
	case "cpu":
	case "emu":
		root, err := os.MkdirTemp("", "accelfs-emu-")
		if err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, closer(func() error { return os.RemoveAll(root) }))
		d, err := emu.New(emu.Options{SysfsRoot: root})
		if err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, d)
		devs, err := d.Discover()
		if err != nil || len(devs) != 1 {
			return nil, nil, nil, fmt.Errorf("emu discover: %v %v", devs, err)
		}
		opts = append(opts, session.WithDevice(d, devs[0]))
	default:
		host := &uacce.Host{}
		devs, err := host.Discover()
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range devs {
			if (mode == "auto" && !d.Isolated && d.HasAlgorithm("deflate")) || d.Name == mode {
				opts = append(opts, session.WithDevice(host, d))
			}
		}
		if mode != "auto" && len(opts) == 0 {
			return nil, nil, nil, fmt.Errorf("accel mode %q: no such device", mode)
		}
	}
	l, err := session.New(opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	all := closer(func() error {
		errs := []error{l.Close()}
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i].Close())
		}
		return errors.Join(errs...)
	})
	return sessionCompressor{l}, func() any { return l.Metrics() }, all, nil
}

type closer func() error

func (f closer) Close() error { return f() }

// sessionCompressor is the same small adapter as cmd/accelfs's (cmd is
// package main and cannot be imported).
type sessionCompressor struct{ l *session.Layer }

func (s sessionCompressor) Run(ctx context.Context, jobs []*blockstore.Job) error {
	sj := make([]session.Job, len(jobs))
	ptrs := make([]*session.Job, len(jobs))
	for i, j := range jobs {
		sj[i] = session.Job{Decompress: j.Decompress, Algo: j.Algo, Level: j.Level, Src: j.Src, Dst: j.Dst, RawLen: j.RawLen}
		ptrs[i] = &sj[i]
	}
	err := s.l.Run(ctx, ptrs)
	for i, j := range jobs {
		j.Out, j.Err = sj[i].Out, sj[i].Err
	}
	return err
}

// autoAlgo is the suite's `--algo auto`: deflate when the mode has a
// hardware engine that compresses it (emu, a hisi_zip device), so the
// suite's stores really go through the device; lz4 otherwise.
func autoAlgo(comp blockstore.Compressor) codec.ID {
	if sc, ok := comp.(sessionCompressor); ok && sc.l.HardwareFor(codec.Deflate, session.Compress) {
		return codec.Deflate
	}
	return codec.LZ4
}

package qm_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/codec"
)

// TestRealDevice runs the qm round trip on a real hisi_zip device when the
// host has one (/sys/class/uacce, or ACCELFS_UACCE_SYSFS). It skips where
// there is none — the emulated device covers the path in accel/emu — and is
// the first thing to run when bringing accelfs up on a Kunpeng server.
func TestRealDevice(t *testing.T) {
	host := &uacce.Host{SysfsRoot: os.Getenv("ACCELFS_UACCE_SYSFS")}
	devs, err := host.Discover()
	if err != nil {
		t.Fatal(err)
	}
	var (
		cz, dz *qm.ZipQueue
		dev    uacce.Device
	)
	for _, alg := range []string{"deflate", "zlib", "gzip"} {
		if dev, err = uacce.Choose(devs, uacce.Want{Algorithm: alg, Refresh: true}); err == nil {
			break
		}
	}
	if err != nil {
		t.Skipf("no usable uacce compression device (%v); accel/emu covers this path", err)
	}
	open := func(dir uacce.Direction) *qm.ZipQueue {
		q, err := host.Open(dev, dir)
		if err != nil {
			t.Fatalf("open %s %v: %v", dev.Name, dir, err)
		}
		z, err := qm.NewZipQueue(q, qm.ZipOptions{})
		if err != nil {
			q.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { z.Close() })
		return z
	}
	cz, dz = open(uacce.Compress), open(uacce.Decompress)
	t.Logf("%s api %s node %d: qp %d/%d depth %d (info defaulted %v)", dev.Name, dev.API, dev.Node,
		cz.Info().QPID, dz.Info().QPID, cz.Info().SQDepth, cz.Info().InfoDefaulted)

	run := func(z *qm.ZipQueue, r *qm.ZipRequest) {
		t.Helper()
		if err := z.Submit(r); err != nil {
			t.Fatalf("submit: %v", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for done := false; !done; {
			if _, err := z.Poll(0, func(got *qm.ZipRequest) { done = got == r }); err != nil {
				t.Fatalf("poll: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("no completion within 10 s")
			}
		}
	}
	src := bytes.Repeat([]byte("accelfs on a real hisi_zip device\n"), 4000)
	for _, a := range []struct {
		name string
		alg  qm.Alg
		id   codec.ID
	}{{"deflate", qm.AlgDeflate, codec.Deflate}, {"zlib", qm.AlgZlib, codec.Zlib}, {"gzip", qm.AlgGzip, codec.Gzip}} {
		if !dev.HasAlgorithm(a.name) {
			continue
		}
		c := &qm.ZipRequest{Alg: a.alg, Src: src, Dst: make([]byte, 0, len(src))}
		run(cz, c)
		if c.Err != nil {
			t.Fatalf("%s compress: %v (status %#x)", a.name, c.Err, c.Status)
		}
		if back, err := codec.Decompress(a.id, nil, c.Out, len(src)); err != nil || !bytes.Equal(back, src) {
			t.Fatalf("%s: device output does not decode on the CPU: %v", a.name, err)
		}
		cc, _ := codec.Compress(a.id, 0, nil, src)
		d := &qm.ZipRequest{Alg: a.alg, Src: cc, Dst: make([]byte, 0, len(src))}
		run(dz, d)
		if d.Err != nil || !bytes.Equal(d.Out, src) {
			t.Fatalf("%s: CPU output through the device: %v", a.name, d.Err)
		}
		t.Logf("%s: %d -> %d bytes on the device, %d on the CPU", a.name, len(src), len(c.Out), len(cc))
	}
	if errors.Is(cz.Err(), qm.ErrQueueDisabled) {
		t.Fatal("queue disabled during the test")
	}
}

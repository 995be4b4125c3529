package emu_test

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/qm"
	"github.com/accelfs/accelfs/accel/uacce"
)

// The whole path the session layer drives, on the emulated device: the same
// code runs on a real device with uacce.Host{} as the provider.
func Example() {
	root, _ := os.MkdirTemp("", "sysfs")
	defer os.RemoveAll(root)
	dev0, err := emu.New(emu.Options{SysfsRoot: root, ID: 0, Node: 0, Queues: 4})
	if err != nil {
		panic(err)
	}
	defer dev0.Close()
	var prov uacce.Provider = dev0

	devs, _ := prov.Discover()
	dev, err := uacce.Choose(devs, uacce.Want{Algorithm: "gzip", Node: 0, Refresh: true})
	if err != nil {
		panic(err)
	}
	q, err := prov.Open(dev, uacce.Compress)
	if err != nil {
		panic(err)
	}
	z, err := qm.NewZipQueue(q, qm.ZipOptions{})
	if err != nil {
		panic(err)
	}
	defer z.Close()

	src := bytes.Repeat([]byte("hello, hisi_zip "), 256)
	req := &qm.ZipRequest{Alg: qm.AlgGzip, Src: src, Dst: make([]byte, 0, len(src))}
	if err := z.Submit(req); err != nil {
		panic(err)
	}
	for done := false; !done; {
		z.Poll(0, func(r *qm.ZipRequest) { done = r == req })
		if !done {
			z.Wait(time.Millisecond)
		}
	}
	fmt.Println(dev.Name, dev.API, "qp", z.Info().QPID, "depth", z.Info().SQDepth)
	fmt.Println(req.Err, "smaller:", len(req.Out) < len(src), "gzip magic:", req.Out[0] == 0x1f && req.Out[1] == 0x8b)
	// Output:
	// hisi_zip-0 hisi_qm_v2 qp 0 depth 1024
	// <nil> smaller: true gzip magic: true
}

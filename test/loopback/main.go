// Command loopback is the FUSE baseline for scripts/bench-untar.sh: go-fuse's
// own loopback filesystem (fs.NewLoopbackRoot) with kernel passthrough
// disabled, so every read and write goes through the FUSE server as it does
// for accelfs. (As root on recent kernels the plain loopback hands file I/O
// to the kernel, a ceiling no transforming filesystem can reach.)
//
// Usage: loopback ORIGINAL MOUNTPOINT
//
// It prints "ready" on stdout once the mount is up, serves until unmounted
// or sent SIGINT/SIGTERM, and exits 0.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: loopback ORIGINAL MOUNTPOINT")
		os.Exit(2)
	}
	root, err := fs.NewLoopbackRoot(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
	// The same kernel-facing settings accelfs uses, minus passthrough.
	sec := time.Second
	srv, err := fs.Mount(os.Args[2], root, &fs.Options{
		AttrTimeout:  &sec,
		EntryTimeout: &sec,
		MountOptions: fuse.MountOptions{
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			MaxWrite:             1 << 20,
			MaxBackground:        64,
			DirectMount:          true,
			FsName:               os.Args[1],
			Name:                 "loopback",
			Options:              []string{"default_permissions"},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopback: mount:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		srv.Unmount()
	}()
	srv.Wait()
}

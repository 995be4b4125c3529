package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// The server's records in BACKING/.accelfs, read by `accelfs umount`:
// mount.pid holds the pid while the server runs; mount.exit says "PID
// running" while it runs and "PID ok" or "PID error: REASON" after it
// exits. A server that dies leaving "running" was killed or crashed before
// its final commit, and umount says so.

// The record files, in the store's own directory; they are opened
// through blockstore.OpenMetaFile (relative to the backing root, no
// symlink followed, .accelfs checked), never by path.
const (
	pidName  = "mount.pid"  // the pid while the server runs
	exitName = "mount.exit" // how the server ended
)

// recordSize is the size of mount.exit: it is written at mount time, padded,
// so that the final status overwrites blocks already allocated and can be
// written when the backing filesystem is full (a common reason for a
// failed final commit).
const recordSize = 1024

// writeRecord writes a record file in place (no truncation: see
// recordSize), padded with spaces, without following a symlink planted in
// its place.
func writeRecord(backing, name, content string) error {
	f, err := blockstore.OpenMetaFile(backing, name, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if len(content) > recordSize-1 {
		content = content[:recordSize-2] + "\n"
	}
	_, err = f.WriteAt([]byte(content+strings.Repeat(" ", recordSize-len(content))), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// serverRecord is this server's pid record.
type serverRecord struct {
	backing string
	log     *slog.Logger
}

func newServerRecord(backing string, log *slog.Logger) *serverRecord {
	if err := writeRecord(backing, exitName, fmt.Sprintf("%d running\n", os.Getpid())); err != nil {
		log.Warn("cannot write the exit record; umount will not know how this server ended", "err", err)
	}
	if err := writeRecord(backing, pidName, strconv.Itoa(os.Getpid())+"\n"); err != nil {
		log.Warn("cannot write the pid file; umount will not wait for this server", "err", err)
	}
	return &serverRecord{backing, log}
}

// exit records the result and removes the pid file.
func (r *serverRecord) exit(err error) {
	msg := "ok"
	if err != nil {
		msg = "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	if werr := writeRecord(r.backing, exitName, fmt.Sprintf("%d %s\n", os.Getpid(), msg)); werr != nil {
		r.log.Warn("cannot write the exit record", "err", werr)
	}
	if meta, err := blockstore.OpenMetaDir(r.backing, false); err == nil {
		unix.Unlinkat(int(meta.Fd()), pidName, 0)
		meta.Close()
	}
}

// readExitRecord returns what the server pid recorded at exit; found is
// false when it recorded nothing (killed, crashed).
func readExitRecord(backing string, pid int) (found bool, err error) {
	b, rerr := readMetaFile(backing, exitName)
	if rerr != nil {
		return false, nil
	}
	p, msg, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if n, _ := strconv.Atoi(p); n != pid || msg == "running" {
		return false, nil
	}
	if msg == "ok" {
		return true, nil
	}
	return true, fmt.Errorf("%s", strings.TrimPrefix(msg, "error: "))
}

// readPid is the pid in a server's pid file (0 if none).
func readPid(backing string) int {
	b, err := readMetaFile(backing, pidName)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// sdNotify sends a state to systemd when NOTIFY_SOCKET is set (a
// Type=notify unit); otherwise it does nothing.
func sdNotify(state string) {
	daemon.SdNotify(false, state)
}

// readMetaFile reads a small record file of the store's own directory.
func readMetaFile(backing, name string) ([]byte, error) {
	f, err := blockstore.OpenMetaFile(backing, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, recordSize))
}

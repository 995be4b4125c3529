package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is a systemd-style NOTIFY_SOCKET: a unix datagram socket.
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p
}

// nextNotify reads one datagram; the deadline only guards against a
// server that never says anything (no progress for a minute).
func nextNotify(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v", err)
	}
	return string(buf[:n])
}

// TestCLISdNotifyForeground (issue 8, systemd): a Type=notify unit runs
// `accelfs mount --foreground`; the server sends READY=1 once the mount
// is ready and STOPPING=1 when it stops.
func TestCLISdNotifyForeground(t *testing.T) {
	requireFUSE(t)
	sock, path := notifySocket(t)
	backing, mnt := t.TempDir(), t.TempDir()
	detachAtCleanup(t, mnt)
	cmd := exec.Command(accelfsBinary(t), "mount", "--foreground", "--accel="+accelMode(), backing, mnt)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if msg := nextNotify(t, sock); !strings.Contains(msg, "READY=1") {
		t.Fatalf("first message %q, want READY=1", msg)
	}
	if !mounted(mnt) {
		t.Fatal("READY=1 before the mount is there")
	}
	writeFile(t, filepath.Join(mnt, "f"), []byte("notified"))
	cmd.Process.Signal(syscall.SIGTERM)
	if msg := nextNotify(t, sock); !strings.Contains(msg, "STOPPING=1") {
		t.Errorf("message after SIGTERM %q, want STOPPING=1", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("server exit: %v", err)
	}
}

// TestCLISdNotifyBackground: without --foreground, `accelfs mount` sends
// READY=1 with MAINPID= the server's pid (so a Type=notify unit follows
// the server, not the parent that exits).
func TestCLISdNotifyBackground(t *testing.T) {
	requireFUSE(t)
	sock, path := notifySocket(t)
	backing, mnt := t.TempDir(), t.TempDir()
	detachAtCleanup(t, mnt)
	cmd := exec.Command(accelfsBinary(t), "mount", "--accel="+accelMode(), backing, mnt)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	msg := nextNotify(t, sock)
	pid := serverPidOf(t, backing)
	if !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "MAINPID="+strconv.Itoa(pid)) {
		t.Errorf("message %q, want READY=1 and MAINPID=%d", msg, pid)
	}
	if out, code := cliRun(t, "", "umount", mnt); code != 0 {
		t.Fatalf("umount: %s", out)
	}
}

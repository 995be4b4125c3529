package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
	accelfs "github.com/accelfs/accelfs/fs"
)

func mountCommand(args []string) *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached: serve in this process until unmounted or signalled"},
		&cli.StringSliceFlag{Name: "o", Usage: "extra mount options, comma separated (e.g. -o ro); allow_other also sets --allow-other"},
		algoFlag(), levelFlag(), blockSizeFlag(), commitIntervalFlag(),
	}
	flags = append(flags, accelFlags()...)
	flags = append(flags,
		&cli.BoolFlag{Name: "writeback", Usage: "enable the kernel writeback cache (batches small writes)"},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount (needs user_allow_other in /etc/fuse.conf when not root)"},
		&cli.BoolFlag{Name: "no-xattrs", Usage: "do not pass extended attributes through (they answer ENOTSUP)"},
		&cli.StringFlag{Name: "log", Usage: "log file of the background server (default BACKING/.accelfs/mount.log)"},
		&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request"},
		&cli.IntFlag{Name: "notify-fd", Hidden: true, Usage: "internal: fd on which the server reports readiness to its parent"},
		&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "diagnostics: write a CPU profile of the server to this file"},
	)
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount BACKING at MOUNTPOINT",
		ArgsUsage: "BACKING MOUNTPOINT",
		Description: `Mounts the store in BACKING (created on first use) at MOUNTPOINT. Returns once
the mount is ready; the server keeps running in the background and logs to
BACKING/.accelfs/mount.log (or --log). With --foreground it serves in this
process. SIGINT/SIGTERM or umount: dirty data is written and committed, then
the server exits 0.

Examples:
   accelfs mount /srv/store /mnt/data
   accelfs mount --algo zstd --level 3 /srv/store /mnt/data
   accelfs mount --block-size 64K --foreground /srv/new-store /mnt/data
   accelfs mount -o ro --allow-other /srv/store /mnt/data`,
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := needArgs(c, 2); err != nil {
				return err
			}
			backing, err := filepath.Abs(c.Args().Get(0))
			if err != nil {
				return err
			}
			mnt, err := filepath.Abs(c.Args().Get(1))
			if err != nil {
				return err
			}
			if _, err := storeOptions(c); err != nil { // validate before forking
				return err
			}
			for _, d := range []string{backing, mnt} {
				if fi, err := os.Stat(d); err != nil {
					return err
				} else if !fi.IsDir() {
					return fmt.Errorf("%s: not a directory", d)
				}
			}
			if !c.Bool("foreground") {
				return daemonize(c, args, backing)
			}
			return serve(c, backing, mnt)
		},
	}
}

// logPath is where the background server logs.
func logPath(c *cli.Context, backing string) string {
	if p := c.String("log"); p != "" {
		abs, err := filepath.Abs(p)
		if err == nil {
			return abs
		}
		return p
	}
	return filepath.Join(backing, blockstore.MetaDir, "mount.log")
}

// daemonize re-executes this binary as `mount --foreground --notify-fd 3
// ...` in a new session and waits until the child reports that the mount
// is ready (or why it failed) on a pipe.
func daemonize(c *cli.Context, args []string, backing string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	i := indexOf(args, "mount")
	if i < 0 {
		return errors.New("cannot find the mount subcommand in the arguments")
	}
	child := append([]string{}, args[1:i+1]...)
	child = append(child, "--foreground", "--notify-fd=3", "--log="+logPath(c, backing))
	child = append(child, args[i+1:]...)

	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, child...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	msg, _ := io.ReadAll(bufio.NewReader(r))
	if s := string(msg); strings.HasPrefix(s, "ok") {
		fmt.Fprintf(c.App.Writer, "accelfs: mounted %s at %s (server pid %d, log %s)\n",
			c.Args().Get(0), c.Args().Get(1), cmd.Process.Pid, logPath(c, backing))
		return cmd.Process.Release()
	}
	werr := cmd.Wait()
	if len(msg) > 0 {
		return errors.New(strings.TrimSpace(string(msg)))
	}
	return fmt.Errorf("server exited before the mount was ready (%v); see %s", werr, logPath(c, backing))
}

func indexOf(l []string, s string) int {
	for i, v := range l {
		if v == s {
			return i
		}
	}
	return -1
}

// notifier reports readiness to a parent started by daemonize.
type notifier struct{ f *os.File }

func (n *notifier) send(msg string) {
	if n.f == nil {
		return
	}
	n.f.WriteString(msg + "\n")
	n.f.Close()
	n.f = nil
}

// serve runs the server in this process until the mount goes away or a
// signal arrives, then closes the store (flush + commit).
func serve(c *cli.Context, backing, mnt string) (err error) {
	var note notifier
	if fd := c.Int("notify-fd"); fd > 0 {
		note.f = os.NewFile(uintptr(fd), "notify")
	}
	defer func() {
		if err != nil {
			note.send(err.Error())
		}
	}()
	logger, closeLog, err := openLog(c, backing, note.f != nil)
	if err != nil {
		return err
	}
	defer closeLog()
	slog.SetDefault(logger) // the engine and the store log through it too
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	sopts, err := storeOptions(c)
	if err != nil {
		return err
	}
	comp, metrics, engine, err := newCompressor(c)
	if err != nil {
		return err
	}
	defer engine.Close()
	if c.String("algo") == "auto" {
		sopts.Algo, sopts.AlgoSet = autoAlgo(comp), true
	}
	sopts.Compressor, sopts.Logger = comp, logger
	for _, o := range splitOptions(c.StringSlice("o")) {
		sopts.ReadOnly = sopts.ReadOnly || o == "ro" // -o ro: the store writes nothing either
	}
	store, err := blockstore.Open(backing, sopts)
	if err != nil {
		return err
	}
	closeStore := func() error {
		if err := store.Close(); err != nil {
			logger.Error("closing the store", "err", err)
			return fmt.Errorf("closing the store: %w", err)
		}
		return nil
	}

	fopts := &accelfs.Options{
		Writeback:         c.Bool("writeback"),
		AllowOther:        c.Bool("allow-other"),
		NoXattrs:          c.Bool("no-xattrs"),
		ExtraMountOptions: splitOptions(c.StringSlice("o")),
		ExtraStats:        metrics,
		FsName:            backing,
		Debug:             c.Bool("debug"),
		Logger:            logger,
	}
	for _, o := range fopts.ExtraMountOptions {
		if o == "allow_other" {
			fopts.AllowOther = true
		}
	}
	srv, err := accelfs.Mount(mnt, backing, store, fopts)
	if err != nil {
		closeStore()
		return err
	}
	logger.Info("mounted", "backing", backing, "mountpoint", mnt, "pid", os.Getpid(), "version", versionString())
	// `accelfs umount` reads this to wait for our exit. Removed after the
	// store is closed.
	if err := os.WriteFile(pidFile(backing), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		logger.Warn("cannot write the pid file; umount will not wait for this server", "err", err)
	}
	defer os.Remove(pidFile(backing))
	note.send("ok")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case <-done:
			logger.Info("unmounted; closing the store")
			return closeStore()
		case s := <-sigs:
			logger.Info("signal: unmounting", "signal", s.String())
			if err := srv.Unmount(); err == nil {
				continue // done follows
			} else {
				logger.Warn("unmount failed, detaching lazily; the server exits when the last open file is closed (signal again to stop now)", "err", err)
			}
			if err := srv.LazyUnmount(); err != nil {
				logger.Error("lazy unmount failed", "err", err)
			}
			select {
			case <-done:
				return closeStore()
			case s = <-sigs:
				logger.Warn("second signal: committing and exiting with files still open", "signal", s.String())
				return closeStore()
			}
		}
	}
}

// splitOptions flattens -o a,b -o c into [a b c].
func splitOptions(l []string) []string {
	var out []string
	for _, s := range l {
		for _, o := range strings.Split(s, ",") {
			if o = strings.TrimSpace(o); o != "" {
				out = append(out, o)
			}
		}
	}
	return out
}

// openLog sets up the server's logger: stderr in the foreground, or the
// log file (which also receives the process's stderr, so a crash's stack
// trace is kept) when --log is given or we run in the background.
func openLog(c *cli.Context, backing string, background bool) (*slog.Logger, func(), error) {
	if !background && c.String("log") == "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), func() {}, nil
	}
	p := logPath(c, backing)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if background {
		unix.Dup3(int(f.Fd()), 2, 0)
		unix.Dup3(int(f.Fd()), 1, 0)
	}
	fmt.Fprintf(f, "---- accelfs %s pid %s %s\n", versionString(), strconv.Itoa(os.Getpid()), time.Now().Format(time.RFC3339))
	return slog.New(slog.NewTextHandler(f, nil)), func() { f.Close() }, nil
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/blockstore"
	accelfs "github.com/accelfs/accelfs/fs"
)

func mountCommand(args []string) *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached: serve in this process until unmounted or signalled"},
		&cli.StringSliceFlag{Name: "o", Usage: "mount options, comma separated, also after the arguments: accelfs's own (algo=, level=, accel=, block-size=, commit-interval=, writeback, nonempty, ...) and kernel ones (ro, noexec, ...); fstab-only ones are dropped (docs/cli.md)"},
		algoFlag(), levelFlag(), blockSizeFlag(), commitIntervalFlag(),
	}
	flags = append(flags, accelFlags()...)
	flags = append(flags,
		&cli.BoolFlag{Name: "writeback", Usage: "enable the kernel writeback cache (batches small writes)"},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount (needs user_allow_other in /etc/fuse.conf when not root)"},
		&cli.BoolFlag{Name: "no-xattrs", Usage: "do not pass extended attributes through (they answer ENOTSUP)"},
		&cli.BoolFlag{Name: "debug", Usage: "log every FUSE request"},
		&cli.IntFlag{Name: "notify-fd", Hidden: true, Usage: "internal: fd on which the server reports readiness to its parent"},
		&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "diagnostics: write a CPU profile of the server to this file"},
	)
	flags = append(flags, logFlags()...)
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount BACKING at MOUNTPOINT",
		ArgsUsage: "BACKING MOUNTPOINT",
		Description: `Mounts the store in BACKING at MOUNTPOINT (an empty BACKING becomes a new
store). Returns once the mount is ready; the server keeps running in the
background and logs to BACKING/.accelfs/mount.log (or --log). With
--foreground it serves in this process. SIGINT/SIGTERM or umount: dirty data
is written and committed, then the server exits 0.

Refused (exit 2): a MOUNTPOINT inside BACKING or BACKING inside MOUNTPOINT,
a MOUNTPOINT with a FUSE mount on it, a non-empty MOUNTPOINT (unless -o
nonempty), a non-empty BACKING that is not a store. Options may also be
given mount(8) style, after the arguments: -o algo=zstd,level=3,ro (see
docs/cli.md and docs/fstab-systemd.md for the options and exit codes).

Examples:
   accelfs mount /srv/store /mnt/data
   accelfs mount --algo zstd --level 3 /srv/store /mnt/data
   accelfs mount --block-size 64K --foreground /srv/new-store /mnt/data
   accelfs mount -o ro --allow-other /srv/store /mnt/data`,
		Flags:  flags,
		Action: func(c *cli.Context) error { return mountAction(c, args) },
	}
}

// mountAction checks everything it can before the server starts (same
// errors in both modes), then serves here or starts the background server.
// A server started by a parent reports its result on --notify-fd.
func mountAction(c *cli.Context, args []string) (err error) {
	var note notifier
	if fd := c.Int("notify-fd"); fd > 0 {
		note.f = os.NewFile(uintptr(fd), "notify")
	}
	defer func() {
		if err != nil {
			note.send(encodeResult(err)) // no-op once sent
		}
	}()
	if err := needArgs(c, 2); err != nil {
		return err
	}
	backing, err := resolveDir("backing directory", c.Args().Get(0))
	if err != nil {
		return err
	}
	mnt, err := resolveDir("mountpoint", c.Args().Get(1))
	if err != nil {
		return err
	}
	if _, err := storeOptions(c); err != nil { // validate before forking
		return err
	}
	if err := checkLogPath(c); err != nil {
		return err
	}
	if c.Int("notify-fd") == 0 { // the parent checked already
		if err := checkMountGuards(backing, mnt, splitOptions(c.StringSlice("o"))); err != nil {
			return err
		}
		if err := checkFUSEDevice(); err != nil {
			return err
		}
	}
	if !c.Bool("foreground") {
		return daemonize(c, args, backing, mnt)
	}
	return serve(c, backing, mnt, &note)
}

// daemonize re-executes this binary as `mount --foreground --notify-fd 3
// FLAGS -- BACKING MOUNTPOINT` (absolute, resolved paths: the server runs
// in /) in a new session, and waits until the server reports on a pipe
// that the mount is ready, or why it failed (with its exit code).
func daemonize(c *cli.Context, args []string, backing, mnt string) error {
	start := time.Now()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf := logPath(c, backing, true)
	child := []string{"mount"}
	child = append(child, mountFlagArgs(args)...)
	child = append(child, "--foreground", "--notify-fd=3")
	if c.String("log") != "" {
		child = append(child, "--log="+logf) // absolute: the server runs in /
	}
	child = append(child, "--", backing, mnt)

	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, child...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	cmd.Env = withoutEnv(os.Environ(), "NOTIFY_SOCKET") // we notify for it (see below)
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if ok, rerr := decodeResult(line); ok {
		fmt.Fprintf(c.App.Writer, "accelfs: mounted %s at %s in %v (server pid %d, log %s)\n",
			backing, mnt, time.Since(start).Round(time.Millisecond), cmd.Process.Pid, logf)
		// Under systemd (Type=notify) the server becomes the main process.
		sdNotify(fmt.Sprintf("READY=1\nMAINPID=%d", cmd.Process.Pid))
		return cmd.Process.Release()
	} else if line != "" {
		cmd.Wait()
		return rerr
	}
	werr := cmd.Wait()
	return fmt.Errorf("server exited before the mount was ready (%v); last log lines:\n%s", werr, tailFile(logf, 10))
}

// mountFlagArgs are the flags of a normalized mount command line
// (`accelfs mount FLAGS -- POSITIONALS`, see normalizeArgs).
func mountFlagArgs(args []string) []string {
	i := indexOf(args, "mount")
	j := indexOf(args, "--")
	if i < 0 || j < i {
		return nil
	}
	return args[i+1 : j]
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// tailFile is the last n lines of a file (for a server that died before
// it could report).
func tailFile(p string, n int) string {
	f, err := os.Open(p)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	fi, _ := f.Stat()
	var off int64
	if fi != nil && fi.Size() > 8<<10 {
		off = fi.Size() - 8<<10
	}
	b := make([]byte, 8<<10)
	k, _ := f.ReadAt(b, off)
	lines := strings.Split(strings.TrimRight(string(b[:k]), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
// signal arrives, then closes the store (flush + commit). Its result also
// goes to a parent waiting on --notify-fd, and to the exit record that
// `accelfs umount` reads.
func serve(c *cli.Context, backing, mnt string, note *notifier) (err error) {
	start := time.Now()
	logger, closeLog, err := openLog(c, backing, note.f != nil)
	if err != nil {
		return err
	}
	defer closeLog()
	slog.SetDefault(logger) // the engine and the store log through it too
	defer func() {
		if errors.Is(err, blockstore.ErrLocked) && codeOf(err) == 0 {
			err = withCode(exitStoreBusy, fmt.Errorf("%s is served by another accelfs process (mounted elsewhere?): %w", backing, err))
		}
		if err != nil {
			logger.Error("server exits", "err", err, "code", exitCodeFor(err), "uptime", time.Since(start).Round(time.Millisecond))
		} else {
			logger.Info("server exits", "code", 0, "uptime", time.Since(start).Round(time.Millisecond))
		}
	}()
	stopProfile, err := startProfile(c.String("cpuprofile"))
	if err != nil {
		return err
	}
	defer stopProfile()

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
	expectAlgo(comp, store.Stats().Algo) // a device that cannot run it says so
	closeStore := func() error {
		if err := store.Close(); err != nil {
			logger.Error("closing the store", "err", err)
			return fmt.Errorf("closing the store: %w", err)
		}
		return nil
	}
	srv, err := mountStore(c, backing, mnt, store, metrics, logger)
	if err != nil {
		closeStore()
		return err
	}
	logger.Info("mounted", "backing", backing, "mountpoint", mnt, "pid", os.Getpid(), "version", versionString(),
		"options", strings.Join(kernelMountOptions(c), ","), "accel", c.String("accel"), "algo_flag", c.String("algo"),
		"level_flag", c.Int("level"), "commit_interval", c.Duration("commit-interval"), "writeback", c.Bool("writeback"),
		"took", time.Since(start).Round(time.Millisecond))
	rec := newServerRecord(backing, logger)
	note.send("ok")
	if c.Int("notify-fd") == 0 {
		sdNotify("READY=1\nSTATUS=serving " + backing + " at " + mnt)
	}
	err = serveUntilDone(srv, store, logger)
	sdNotify("STOPPING=1")
	rec.exit(err)
	return err
}

// startProfile starts the hidden --cpuprofile diagnostics ("" = off).
func startProfile(p string) (stop func(), err error) {
	if p == "" {
		return func() {}, nil
	}
	f, err := os.Create(p)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// kernelMountOptions are the -o options for the kernel: nonempty is ours.
func kernelMountOptions(c *cli.Context) []string {
	var out []string
	for _, o := range splitOptions(c.StringSlice("o")) {
		if o != "nonempty" {
			out = append(out, o)
		}
	}
	return out
}

// mountStore makes the FUSE mount; a failure is classified (exit code,
// fusermount3's own words: captureStderr).
func mountStore(c *cli.Context, backing, mnt string, store *blockstore.Store, metrics func() any, logger *slog.Logger) (*accelfs.Server, error) {
	fopts := &accelfs.Options{
		Writeback:         c.Bool("writeback"),
		AllowOther:        c.Bool("allow-other"),
		NoXattrs:          c.Bool("no-xattrs"),
		ExtraMountOptions: kernelMountOptions(c),
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
	var srv *accelfs.Server
	lines, err := captureStderr(func() (err error) {
		srv, err = accelfs.Mount(mnt, backing, store, fopts)
		return err
	})
	if err != nil {
		return nil, classifyMountErr(err, lines)
	}
	return srv, nil
}

// serveUntilDone waits for the unmount (or a signal, which unmounts, lazily
// if files are open), then closes the store: flush and final commit.
func serveUntilDone(srv *accelfs.Server, store *blockstore.Store, logger *slog.Logger) error {
	closeStore := func() error {
		t := time.Now()
		if err := store.Close(); err != nil {
			return fmt.Errorf("final commit failed, changes since the last commit may be lost: closing the store: %w", err)
		}
		logger.Info("store closed (final commit done)", "took", time.Since(t).Round(time.Millisecond))
		return nil
	}
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

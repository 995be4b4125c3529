package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
)

// The server's log: one log/slog format (text or json) for every line,
// including what anything writes to the process's stderr (fusermount3, the
// runtime), written to a size-capped file (the current file plus one
// rotated ".1" file). The cap is our own small writer, not lumberjack:
// lumberjack creates missing parent directories and follows symlinks,
// both of which issue 9 asks the log not to do.

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log", Usage: "log file of the server (default BACKING/.accelfs/mount.log in the background, stderr in the foreground); its directory must exist"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json",
			Action: func(c *cli.Context, v string) error { _, err := logHandlerFor(io.Discard, v, "info"); return err }},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "least severe level logged: debug, info, warn or error",
			Action: func(c *cli.Context, v string) error { _, err := logHandlerFor(io.Discard, "text", v); return err }},
		&cli.StringFlag{Name: "log-max-size", Value: "16M", Usage: "rotate the log file when it reaches this size (one old file, LOG.1, is kept)",
			Action: func(c *cli.Context, v string) error { _, err := parseLogMax(v); return err }},
	}
}

func parseLogMax(s string) (int64, error) {
	n, _, err := splitSize(s)
	if err != nil || n < 64<<10 {
		return 0, usagef("--log-max-size %q: want a size of at least 64K, e.g. 16M", s)
	}
	return int64(n), nil
}

// logHandlerFor builds the slog handler for --log-format and --log-level.
func logHandlerFor(w io.Writer, format, level string) (slog.Handler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.NewTextHandler(w, o), nil
	case "json":
		return slog.NewJSONHandler(w, o), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// logPath is where the server logs ("" = stderr, foreground only).
func logPath(c *cli.Context, backing string, background bool) string {
	if p := c.String("log"); p != "" {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	if !background {
		return ""
	}
	return filepath.Join(backing, blockstore.MetaDir, "mount.log")
}

// checkLogPath refuses a --log whose directory does not exist (issue 9
// item 12: it used to be created).
func checkLogPath(c *cli.Context) error {
	p := c.String("log")
	if p == "" {
		return nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return usagef("--log %q: %v", p, err)
	}
	fi, err := os.Stat(filepath.Dir(abs))
	switch {
	case err != nil:
		return usagef("--log %s: directory %s: %v", abs, filepath.Dir(abs), errors.Unwrap(err))
	case !fi.IsDir():
		return usagef("--log %s: %s is not a directory", abs, filepath.Dir(abs))
	}
	if fi, err := os.Lstat(abs); err == nil && !fi.Mode().IsRegular() {
		return usagef("--log %s: exists and is not a regular file", abs)
	}
	return nil
}

// cappedFile is an append-only log file that is rotated to NAME.1 when a
// write would take it past max bytes. It is opened and rotated relative to
// its directory's descriptor, never through a symlink, so a swapped path
// cannot redirect a root server's log.
type cappedFile struct {
	mu   sync.Mutex // guards f and size
	dir  *os.File   // the log's directory (owned: closed by Close)
	name string
	max  int64
	f    *os.File
	size int64
}

func openCapped(dir *os.File, name string, max int64) (*cappedFile, error) {
	f, err := blockstore.OpenInDir(dir, name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("open log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		dir.Close()
		return nil, err
	}
	c := &cappedFile{dir: dir, name: name, max: max, f: f, size: fi.Size()}
	debug.SetCrashOutput(f, debug.CrashOptions{}) // a fatal error's stack trace lands in the log
	return c, nil
}

func (c *cappedFile) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.size+int64(len(p)) > c.max && c.size > 0 {
		c.rotate()
	}
	n, err := c.f.Write(p)
	c.size += int64(n)
	return n, err
}

// rotate moves the file to NAME.1 and starts a new one; on failure it
// keeps appending to the current file (losing no line).
func (c *cappedFile) rotate() {
	dfd := int(c.dir.Fd())
	if err := unix.Renameat(dfd, c.name, dfd, c.name+".1"); err != nil {
		return
	}
	f, err := blockstore.OpenInDir(c.dir, c.name, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return // keep writing to the renamed file
	}
	c.f.Close()
	c.f, c.size = f, 0
	debug.SetCrashOutput(f, debug.CrashOptions{})
}

func (c *cappedFile) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	debug.SetCrashOutput(nil, debug.CrashOptions{})
	c.dir.Close()
	return c.f.Close()
}

// openLogDir opens the directory the log lives in: the store's own,
// checked and created the way the store does (blockstore.OpenMetaDir: it
// refuses a directory that is not a store), or --log's, which must exist.
func openLogDir(c *cli.Context, backing string) (*os.File, error) {
	if c.String("log") == "" {
		d, err := blockstore.OpenMetaDir(backing, true)
		if err != nil {
			return nil, fmt.Errorf("log directory: %w", err)
		}
		return d, nil
	}
	abs, err := filepath.Abs(c.String("log"))
	if err != nil {
		return nil, err
	}
	return os.Open(filepath.Dir(abs))
}

// openLog sets up the server's logger: stderr in the foreground without
// --log, else the capped log file. In the background the process's
// stdout and stderr are redirected into the logger (stderrToLog).
func openLog(c *cli.Context, backing string, background bool) (*slog.Logger, func(), error) {
	p := logPath(c, backing, background)
	if p == "" {
		h, err := logHandlerFor(os.Stderr, c.String("log-format"), c.String("log-level"))
		return slogOrNil(h), func() {}, err
	}
	if err := checkLogPath(c); err != nil {
		return nil, nil, err
	}
	max, err := parseLogMax(c.String("log-max-size"))
	if err != nil {
		return nil, nil, err
	}
	dir, err := openLogDir(c, backing)
	if err != nil {
		return nil, nil, err
	}
	f, err := openCapped(dir, filepath.Base(p), max)
	if err != nil {
		return nil, nil, err
	}
	h, err := logHandlerFor(f, c.String("log-format"), c.String("log-level"))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	logger := slog.New(h)
	stop := func() {}
	if background {
		stop, err = stderrToLog(logger)
		if err != nil {
			logger.Warn("cannot route stderr into the log", "err", err)
		}
	}
	logger.Info("server starting", "version", versionString(), "pid", os.Getpid(),
		"log_max", humanize.IBytes(uint64(max)))
	return logger, func() { stop(); f.Close() }, nil
}

func slogOrNil(h slog.Handler) *slog.Logger {
	if h == nil {
		return nil
	}
	return slog.New(h)
}

// stderrToLog points fds 1 and 2 at a pipe whose lines become log records
// (src=stderr). The pipe's write end is non-blocking so that a burst
// nobody reads (the reader dies with a crashing process) cannot block the
// writer; a fatal error's trace also goes to the file via SetCrashOutput.
func stderrToLog(logger *slog.Logger) (stop func(), err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return func() {}, err
	}
	r := os.NewFile(uintptr(p[0]), "stderr-pipe")
	unix.SetNonblock(p[1], true)
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(p[1], fd, 0); err != nil {
			r.Close()
			unix.Close(p[1])
			return func() {}, err
		}
	}
	unix.Close(p[1])
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				logger.Warn(line, "src", "stderr")
			}
		}
	}()
	return func() {
		// Point 1 and 2 at /dev/null so the reader sees EOF and ends.
		if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			unix.Dup3(int(null.Fd()), 1, 0)
			unix.Dup3(int(null.Fd()), 2, 0)
			null.Close()
		}
		<-done
		r.Close()
	}, nil
}

package fs

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/blockstore"
)

// sentinelErrno is what each exported sentinel error of blockstore and
// accel/session becomes at the FUSE boundary, and whether it is logged.
var sentinelErrno = map[string]struct {
	err    error
	errno  syscall.Errno
	logged bool
}{
	"blockstore.ErrLocked":      {blockstore.ErrLocked, syscall.EIO, true},
	"blockstore.ErrBadFormat":   {blockstore.ErrBadFormat, syscall.EIO, true},
	"blockstore.ErrNotStore":    {blockstore.ErrNotStore, syscall.EIO, true},
	"blockstore.ErrExists":      {blockstore.ErrExists, syscall.EIO, true},
	"blockstore.ErrUnsafe":      {blockstore.ErrUnsafe, syscall.EIO, true},
	"blockstore.ErrReadOnly":    {blockstore.ErrReadOnly, syscall.EROFS, false},
	"blockstore.ErrCorrupt":     {blockstore.ErrCorrupt, syscall.EIO, true},
	"blockstore.ErrNoSpace":     {blockstore.ErrNoSpace, syscall.ENOSPC, false},
	"blockstore.ErrTooLarge":    {blockstore.ErrTooLarge, syscall.EFBIG, false},
	"blockstore.ErrInterrupted": {blockstore.ErrInterrupted, syscall.EINTR, false},
	"blockstore.ErrInvalid":     {blockstore.ErrInvalid, syscall.EINVAL, false},
	"blockstore.ErrNoData":      {blockstore.ErrNoData, syscall.ENXIO, false},
	"blockstore.ErrBusy":        {blockstore.ErrBusy, syscall.EBUSY, false},
	"blockstore.ErrClosed":      {blockstore.ErrClosed, syscall.EIO, true},

	"session.ErrClosed":      {session.ErrClosed, syscall.EIO, true},
	"session.ErrQueueFull":   {session.ErrQueueFull, syscall.EIO, true},
	"session.ErrUnsupported": {session.ErrUnsupported, syscall.EIO, true},
	"session.ErrBadRequest":  {session.ErrBadRequest, syscall.EIO, true},
	"session.ErrCtxDead":     {session.ErrCtxDead, syscall.EIO, true},
	"session.ErrDevice":      {session.ErrDevice, syscall.EIO, true},
	"session.ErrNoDevice":    {session.ErrNoDevice, syscall.EIO, true},
	"session.ErrTopology":    {session.ErrTopology, syscall.EIO, true},

	"context.Canceled":         {context.Canceled, syscall.EINTR, false},
	"context.DeadlineExceeded": {context.DeadlineExceeded, syscall.EINTR, false},
}

// exportedErrVars returns "pkg.ErrX" for every exported package-level
// variable named Err* in the non-test Go files of dir.
func exportedErrVars(t *testing.T, dir, pkg string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(id.Name, "Err") && id.IsExported() {
						names = append(names, pkg+"."+id.Name)
					}
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// TestErrnoEverySentinel: every exported sentinel of blockstore and
// accel/session (found in their source, so that a new one cannot be
// forgotten) maps to its errno, bare, wrapped as the store wraps it and
// joined with another error; the EIO class is logged with the path.
func TestErrnoEverySentinel(t *testing.T) {
	names := append(exportedErrVars(t, "../blockstore", "blockstore"), exportedErrVars(t, "../accel/session", "session")...)
	if len(names) < 10 {
		t.Fatalf("found only %d sentinels: %v", len(names), names)
	}
	for _, name := range names {
		if _, ok := sentinelErrno[name]; !ok {
			t.Errorf("%s has no expected errno in sentinelErrno: add it (and to errnoTable if it is not EIO)", name)
		}
	}
	for name, want := range sentinelErrno {
		for _, err := range []error{
			want.err,
			fmt.Errorf("/b/f: block 3: %w", want.err),
			fmt.Errorf("/b/f: decompress: %w", fmt.Errorf("engine: %w", want.err)),
		} {
			var buf bytes.Buffer
			got := toErrno(slog.New(slog.NewTextHandler(&buf, nil)), "read", "/dir/file", err)
			if got != want.errno {
				t.Errorf("%s (%v): errno %v, want %v", name, err, got, want.errno)
			}
			if logged := buf.Len() > 0; logged != want.logged {
				t.Errorf("%s: logged %v, want %v", name, logged, want.logged)
			}
			if want.logged && !strings.Contains(buf.String(), "/dir/file") {
				t.Errorf("%s: the log line does not name the file: %s", name, buf.String())
			}
		}
	}
}

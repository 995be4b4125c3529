package main

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMapOptions(t *testing.T) {
	for _, tc := range []struct {
		in          string
		flags, keep []string
	}{
		{"algo=zstd,level=3", []string{"--algo=zstd", "--level=3"}, nil},
		{"rw,algo=lz4,dev,suid", []string{"--algo=lz4"}, nil}, // what mount.fuse3 adds
		{"defaults,noauto,nofail,_netdev,user,users,x-systemd.automount,comment=x,noatime", nil, nil},
		{"ro,nonempty,allow_other,writeback", []string{"--allow-other", "--writeback"}, []string{"ro", "nonempty"}},
		{"block_size=64K,commit_interval=1s,accel=emu,log_level=debug,noxattrs",
			[]string{"--block-size=64K", "--commit-interval=1s", "--accel=emu", "--log-level=debug", "--no-xattrs"}, nil},
		{"nosuid,nodev,noexec,exec", nil, []string{"nosuid", "nodev", "noexec"}},
		{"", nil, nil},
	} {
		flags, keep, err := mapOptions(tc.in)
		if err != nil || !slices.Equal(flags, tc.flags) || !slices.Equal(keep, tc.keep) {
			t.Errorf("mapOptions(%q) = %q, %q, %v; want %q, %q", tc.in, flags, keep, err, tc.flags, tc.keep)
		}
	}
	for _, in := range []string{"frobnicate", "algo=", "level", "writeback=1", "max_read=4096", "fd=3"} {
		if _, _, err := mapOptions(in); err == nil {
			t.Errorf("mapOptions(%q) accepted", in)
		} else if ue := (usageError{}); !errors.As(err, &ue) {
			t.Errorf("mapOptions(%q): %v is not a usage error", in, err)
		}
	}
}

func TestNormalizeArgs(t *testing.T) {
	cmds := newApp(nil).Commands
	for _, tc := range []struct{ in, want string }{
		// mount.fuse3's call for an fstab line of type fuse.accelfs
		{"accelfs /srv/s /mnt/d -o rw,algo=zstd,level=3,dev,suid", "accelfs mount --algo=zstd --level=3 -- /srv/s /mnt/d"},
		// type fuse, source accelfs#/srv/s: mount.fuse3 strips "accelfs#" itself; we take it too
		{"accelfs accelfs#/srv/s /mnt/d", "accelfs mount -- /srv/s /mnt/d"},
		// installed as /sbin/mount.fuse.accelfs, called by mount(8)
		{"/sbin/mount.fuse.accelfs /srv/s /mnt/d -n -v -o ro,nofail -t fuse.accelfs", "/sbin/mount.fuse.accelfs mount -o ro -- /srv/s /mnt/d"},
		// flags after the positionals, -oX, --flag value
		{"accelfs mount b m --foreground -oro --algo lz4", "accelfs mount --foreground --algo=lz4 -o ro -- b m"},
		{"accelfs mount -f -o nonempty,algo=gzip b m", "accelfs mount --f --algo=gzip -o nonempty -- b m"},
		{"accelfs mount -- -odd m", "accelfs mount -- -odd m"},
		// other commands and unknown words are left alone
		{"accelfs stats /mnt/d", "accelfs stats /mnt/d"},
		{"accelfs frobnicate x y", "accelfs frobnicate x y"},
		{"accelfs", "accelfs"},
	} {
		got, err := normalizeArgs(strings.Fields(tc.in), cmds)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("normalizeArgs(%q) = %q, %v; want %q", tc.in, strings.Join(got, " "), err, tc.want)
		}
	}
	for _, in := range []string{"accelfs mount b m -o bogus", "accelfs mount b m --algo", "accelfs /s /m -o level"} {
		if _, err := normalizeArgs(strings.Fields(in), cmds); err == nil {
			t.Errorf("normalizeArgs(%q) accepted", in)
		}
	}
}

// FuzzNormalizeArgs: any argument list normalizes without panicking, to
// a list that starts with the program name, and normalizing is stable.
func FuzzNormalizeArgs(f *testing.F) {
	for _, s := range []string{"accelfs /s /m -o rw,algo=zstd", "accelfs mount b m -oro", "accelfs mount --", "accelfs a#b c -t", "mount.accelfs x"} {
		f.Add(s)
	}
	cmds := newApp(nil).Commands
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Fields(s)
		if len(args) == 0 {
			return
		}
		out, err := normalizeArgs(args, cmds)
		if err != nil {
			return
		}
		if len(out) == 0 || out[0] != args[0] {
			t.Fatalf("normalizeArgs(%q) = %q", args, out)
		}
		again, err := normalizeArgs(out, cmds)
		if err != nil || !slices.Equal(again, out) && out[1] == "mount" && !slices.Contains(out[2:], "--") {
			t.Fatalf("not stable: %q -> %q -> %q (%v)", args, out, again, err)
		}
	})
}

// FuzzMapOptions: every option list is mapped or refused with a usage
// error, never a panic; mapped flags are --name or --name=value.
func FuzzMapOptions(f *testing.F) {
	for _, s := range []string{"algo=zstd,level=3", "ro,,nonempty", "x-a=b,comment=c", "=,=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flags, _, err := mapOptions(s)
		if err != nil {
			if ue := (usageError{}); !errors.As(err, &ue) {
				t.Fatalf("mapOptions(%q): %v is not a usage error", s, err)
			}
			return
		}
		for _, f := range flags {
			if !strings.HasPrefix(f, "--") || strings.ContainsRune(f, ',') {
				t.Fatalf("mapOptions(%q) gave flag %q", s, f)
			}
		}
	})
}

func TestClassifyMountErr(t *testing.T) {
	fm := func(l string) []string { return []string{"some other line", l} }
	for _, tc := range []struct {
		err    error
		stderr []string
		code   int
		says   string
	}{
		{unix.EINVAL, nil, exitUsage, "refused"},
		{unix.EPERM, nil, exitMountDenied, "refused"},
		{errors.New("fusermount exited with code 256"), fm("fusermount3: option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf"), exitMountDenied, "user_allow_other"},
		{errors.New("fusermount exited with code 256"), fm("/usr/bin/fusermount3: failed to open /dev/fuse: Permission denied"), exitNoFUSE, "failed to open /dev/fuse"},
		{errors.New("fusermount exited with code 256"), fm("fusermount3: unknown option 'frob'"), exitUsage, "unknown option"},
		{fmt.Errorf("find fusermount: %w", exec.ErrNotFound), nil, exitNoFUSE, "not usable"},
		{errors.New("something else"), nil, exitFailure, "something else"},
	} {
		err := classifyMountErr(tc.err, tc.stderr)
		if got := exitCodeFor(err); got != tc.code || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("classifyMountErr(%v, %q) = %v (exit %d); want exit %d saying %q", tc.err, tc.stderr, err, got, tc.code, tc.says)
		}
		if strings.Contains(err.Error(), "exited with code") && len(tc.stderr) > 0 {
			t.Errorf("%v: fusermount3's line not used", err)
		}
	}
}

// TestResultRoundTrip: a background server's error reaches the parent with
// its exit code and message intact (so both modes exit alike).
func TestResultRoundTrip(t *testing.T) {
	for _, err := range []error{
		usagef("mountpoint %s is not empty", "/m"),
		withCode(exitNoFUSE, errors.New("two\nlines \\ and a backslash")),
		withCode(exitStoreBusy, errors.New("busy")),
		errors.New("plain failure"),
	} {
		ok, got := decodeResult(encodeResult(err))
		if ok || got == nil || got.Error() != err.Error() || exitCodeFor(got) != exitCodeFor(err) {
			t.Errorf("round trip of %q (exit %d): %v, %q (exit %d)", err, exitCodeFor(err), ok, got, exitCodeFor(got))
		}
	}
	if ok, err := decodeResult("ok\n"); !ok || err != nil {
		t.Errorf("ok: %v %v", ok, err)
	}
	for _, bad := range []string{"", "garbage", "err x y", "err 0 zero", "err 999 big"} {
		if ok, err := decodeResult(bad); ok || err == nil {
			t.Errorf("decodeResult(%q) = %v, %v", bad, ok, err)
		}
	}
}

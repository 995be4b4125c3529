package main

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Mount options (-o) and mount.fuse3's calling convention.
//
// mount(8) runs /sbin/mount.fuse3 for type fuse.accelfs (and for type fuse
// with source "accelfs#BACKING"), which runs `sh -c "accelfs BACKING MNT
// -o OPTS"`: no subcommand, options after the positional arguments, and
// generic mount(8) options mixed with ours. normalizeArgs rewrites that,
// and `accelfs mount` with options after the positionals, into the form
// urfave/cli parses: `accelfs mount FLAGS -- BACKING MNT`.

// optionFlags maps `-o name=value` options to the mount flags they set.
// Both spellings (with - and _) are accepted, as fstab users write both.
var optionFlags = map[string]string{
	"algo": "algo", "level": "level", "accel": "accel",
	"block-size": "block-size", "block_size": "block-size", "blocksize": "block-size",
	"commit-interval": "commit-interval", "commit_interval": "commit-interval",
	"log": "log", "log-format": "log-format", "log_format": "log-format",
	"log-level": "log-level", "log_level": "log-level",
	"emu-model": "emu-model", "emu_model": "emu-model",
}

// optionBools maps flag-like options without a value to bool flags.
var optionBools = map[string]string{
	"writeback": "writeback", "no-xattrs": "no-xattrs", "no_xattrs": "no-xattrs", "noxattrs": "no-xattrs",
	"allow_other": "allow-other", "allow-other": "allow-other", "debug": "debug",
}

// kernelOptions are passed to the kernel (or fusermount3) as they are.
// nonempty is ours (the mountpoint check) and is removed before the mount.
var kernelOptions = []string{"ro", "nodev", "nosuid", "noexec", "sync", "dirsync", "lazytime",
	"default_permissions", "nonempty"}

// droppedOptions are generic mount(8)/fstab options that mean nothing to a
// FUSE mount, or that fusermount3 rejects; they are dropped. dev, suid and
// exec are dropped too: mount.fuse3 adds dev,suid to every mount, and an
// accelfs mount stays nodev,nosuid (exec is the default; noexec is kept).
var droppedOptions = []string{"defaults", "auto", "noauto", "user", "users", "nouser", "owner",
	"group", "nofail", "_netdev", "rw", "dev", "suid", "exec", "async", "atime", "noatime",
	"relatime", "norelatime", "strictatime", "nostrictatime", "diratime", "nodiratime",
	"nolazytime", "loud", "silent", "nomand", "iversion", "noiversion"}

// droppedPrefixes: x-systemd.*, x-gvfs-*, comment=... are for other tools.
var droppedPrefixes = []string{"x-", "comment="}

// mapOptions splits a -o list into mount flags (--name=value) and the
// options that stay -o options (kernel ones and nonempty).
func mapOptions(list string) (flags, keep []string, err error) {
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		name, value, hasValue := strings.Cut(o, "=")
		switch {
		case o == "":
		case hasValue && optionFlags[name] != "":
			if value == "" {
				return nil, nil, usagef("-o %s: empty value", o)
			}
			flags = append(flags, "--"+optionFlags[name]+"="+value)
		case !hasValue && optionBools[name] != "":
			flags = append(flags, "--"+optionBools[name])
		case slices.Contains(kernelOptions, o):
			keep = append(keep, o)
		case slices.Contains(droppedOptions, o) || hasAnyPrefix(o, droppedPrefixes):
		default:
			return nil, nil, usagef("-o %s: unknown mount option; accelfs takes algo=, level=, accel=, block-size=, commit-interval=, log=, log-format=, log-level=, writeback, no-xattrs, allow_other, debug, nonempty, and the kernel options %s (see docs/cli.md)",
				o, strings.Join(kernelOptions[:len(kernelOptions)-1], ","))
		}
	}
	return flags, keep, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isFstabCall reports whether args are mount.fuse3's `accelfs BACKING MNT
// -o OPTS` (or this binary was installed as mount.fuse.accelfs and called
// by mount(8) directly). A first argument that is no command and holds a
// "/" (fstab sources are paths) or "accelfs#" selects it; anything else
// stays an unknown command.
func isFstabCall(args []string, commands []*cli.Command) bool {
	base := filepath.Base(args[0])
	if base == "mount.fuse.accelfs" || base == "mount.accelfs" {
		return true
	}
	if len(args) < 3 || strings.HasPrefix(args[1], "-") {
		return false
	}
	for _, c := range commands {
		if c.HasName(args[1]) {
			return false
		}
	}
	return strings.Contains(args[1], "/") || strings.HasPrefix(args[1], "accelfs#")
}

// normalizeArgs rewrites a mount invocation (fstab form or `accelfs mount`
// with flags anywhere) into `accelfs mount FLAGS -- POSITIONALS`, with -o
// options mapped to flags. Other commands pass unchanged.
func normalizeArgs(args []string, commands []*cli.Command) ([]string, error) {
	var rest []string
	fstab := false
	switch {
	case len(args) < 2:
		return args, nil
	case isFstabCall(args, commands):
		rest, fstab = args[1:], true
	case args[1] == "mount":
		rest = args[2:]
	default:
		return args, nil
	}
	var mount *cli.Command
	for _, c := range commands {
		if c.Name == "mount" {
			mount = c
		}
	}
	flags, pos, err := splitMountArgs(rest, boolFlagNames(mount), fstab)
	if err != nil {
		return nil, err
	}
	out := append([]string{args[0], "mount"}, flags...)
	if len(pos) > 0 {
		pos[0] = strings.TrimPrefix(pos[0], "accelfs#")
	}
	return append(append(out, "--"), pos...), nil
}

// splitMountArgs separates flags from positional arguments (flags may come
// after them) and expands -o lists. In fstab mode mount(8)'s helper flags
// -n -s -v (and -t TYPE) are accepted and ignored.
func splitMountArgs(rest []string, bools map[string]bool, fstab bool) (flags, pos []string, err error) {
	var keep []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case a == "-" || !strings.HasPrefix(a, "-"):
			pos = append(pos, a)
		case fstab && (a == "-n" || a == "-s" || a == "-v"):
		case fstab && a == "-t":
			i++
		default:
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if strings.HasPrefix(a, "-o") && len(a) > 2 && a[2] != '=' { // -oro,algo=lz4
				name, value, hasValue = "o", a[2:], true
			}
			if !hasValue && !bools[name] {
				if i+1 >= len(rest) {
					return nil, nil, usagef("flag %s needs a value", a)
				}
				i++
				value, hasValue = rest[i], true
			}
			if name != "o" {
				if hasValue {
					flags = append(flags, "--"+name+"="+value)
				} else {
					flags = append(flags, "--"+name)
				}
				continue
			}
			f, k, err := mapOptions(value)
			if err != nil {
				return nil, nil, err
			}
			flags, keep = append(flags, f...), append(keep, k...)
		}
	}
	if len(keep) > 0 {
		flags = append(flags, "-o", strings.Join(keep, ","))
	}
	return flags, pos, nil
}

// boolFlagNames lists the names and aliases of cmd's flags that take no
// value (so "--writeback BACKING" is not read as --writeback=BACKING).
func boolFlagNames(cmd *cli.Command) map[string]bool {
	m := map[string]bool{"help": true, "h": true}
	if cmd == nil {
		return m
	}
	for _, f := range cmd.Flags {
		if _, ok := f.(*cli.BoolFlag); ok {
			for _, n := range f.Names() {
				m[n] = true
			}
		}
	}
	return m
}

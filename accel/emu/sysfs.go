package emu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeSysfs creates <root>/<name>/ with the attributes uacce.Discover
// reads (§1.2, §6.1): api, flags, algorithms, available_instances,
// region_mmio_size, region_dus_size, isolate, isolate_strategy and
// device/numa_node. The real class entry is a symlink to the device
// directory and "device" a symlink to the PCI function; plain directories
// are enough for Discover.
func (d *Device) writeSysfs() error {
	dir := d.sysfsDir
	if err := os.MkdirAll(filepath.Join(dir, "device"), 0o755); err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	files := map[string]string{
		"api":                 d.api,
		"flags":               strconv.FormatUint(uint64(d.opts.Flags), 10),
		"algorithms":          strings.Join(d.opts.Algorithms, "\n"),
		"available_instances": strconv.Itoa(d.opts.Queues),
		"region_mmio_size":    strconv.Itoa(d.mmioSize),
		"region_dus_size":     strconv.Itoa(d.dusSize),
		"isolate":             "0",
		"isolate_strategy":    "0",
		"device/numa_node":    strconv.Itoa(d.opts.Node),
	}
	for name, v := range files {
		if err := writeAttr(filepath.Join(dir, name), v); err != nil {
			return err
		}
	}
	return nil
}

// writeAttr replaces an attribute atomically (write + rename) so concurrent
// readers never see a partial value.
func writeAttr(path, v string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("emu: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("emu: write %s: %w", path, err)
	}
	return nil
}

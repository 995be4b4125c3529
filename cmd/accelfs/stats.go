package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/accelfs/accelfs/blockstore"
	accelfs "github.com/accelfs/accelfs/fs"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:      "stats",
		Usage:     "show what a mounted store holds and how well it compresses",
		ArgsUsage: "MOUNTPOINT",
		Description: `Prints logical bytes (what files contain), stored bytes (what their records
take), the ratio stored/logical, blocks per algorithm, raw (incompressible)
and zero (hole) blocks, and, when the session layer reports them, per-engine
counters and fallbacks. --json prints the document as the server sends it
(keys are listed in README.md).

Examples:
   accelfs stats /mnt/data
   accelfs stats --json /mnt/data | jq .ratio`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the raw JSON document"},
		},
		Action: func(c *cli.Context) error {
			mnt, err := absArg(c)
			if err != nil {
				return err
			}
			doc, err := readStats(mnt)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				var buf bytes.Buffer
				if err := json.Indent(&buf, doc, "", "  "); err != nil {
					return err
				}
				buf.WriteByte('\n')
				_, err := c.App.Writer.Write(buf.Bytes())
				return err
			}
			return printStats(c.App.Writer, doc)
		},
	}
}

// readStats fetches the stats document from the mount's root.
func readStats(mnt string) ([]byte, error) {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getxattr(mnt, accelfs.StatsXattr, buf)
		if errors.Is(err, syscall.ERANGE) && len(buf) < 16<<20 {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if errors.Is(err, syscall.ENOENT) {
			return nil, usagef("%s: no such file or directory", mnt)
		}
		if errors.Is(err, syscall.ENODATA) || errors.Is(err, syscall.ENOTSUP) {
			if fi, serr := os.Lstat(filepath.Join(mnt, blockstore.MetaDir)); serr == nil && fi.IsDir() {
				return nil, notMounted(mnt, "stats") // a backing directory: say where it is mounted
			}
			return nil, usagef("%s is not an accelfs mount (no %s attribute)", mnt, accelfs.StatsXattr)
		}
		if err != nil {
			return nil, fmt.Errorf("read stats of %s: %w", mnt, err)
		}
		return buf[:n], nil
	}
}

// statsDoc is the part of the document the text output shows.
type statsDoc struct {
	LogicalBytes int64                     `json:"logical_bytes"`
	StoredBytes  int64                     `json:"stored_bytes"`
	Ratio        float64                   `json:"ratio"`
	Blocks       map[string]int64          `json:"blocks"`
	RawBlocks    int64                     `json:"raw_blocks"`
	ZeroBlocks   int64                     `json:"zero_blocks"`
	Files        int64                     `json:"files"`
	DirtyBytes   int64                     `json:"dirty_bytes"`
	BlockSize    int                       `json:"block_size"`
	Algo         string                    `json:"algo"`
	Level        int                       `json:"level"`
	Engines      map[string]map[string]any `json:"engines"`
	Fallbacks    map[string]int64          `json:"fallbacks"`
}

func printStats(w io.Writer, raw []byte) error {
	var d statsDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("stats document: %w", err)
	}
	saved := 0.0
	if d.LogicalBytes > 0 {
		saved = 100 * (1 - d.Ratio)
	}
	fmt.Fprintf(w, "logical bytes: %d (%s)\n", d.LogicalBytes, humanBytes(d.LogicalBytes))
	fmt.Fprintf(w, "stored bytes:  %d (%s)\n", d.StoredBytes, humanBytes(d.StoredBytes))
	fmt.Fprintf(w, "ratio:         %.3f stored/logical (%.1f%% saved)\n", d.Ratio, saved)
	fmt.Fprintf(w, "files:         %d\n", d.Files)
	fmt.Fprintf(w, "blocks:        %s\n", counts(d.Blocks))
	fmt.Fprintf(w, "raw blocks:    %d (stored uncompressed)\n", d.RawBlocks)
	fmt.Fprintf(w, "zero blocks:   %d (holes, no record)\n", d.ZeroBlocks)
	fmt.Fprintf(w, "dirty bytes:   %d (not yet written)\n", d.DirtyBytes)
	fmt.Fprintf(w, "new blocks:    %s level %d, block size %d\n", d.Algo, d.Level, d.BlockSize)
	if len(d.Engines) > 0 {
		fmt.Fprintln(w, "engines:")
		for _, name := range sortedKeys(d.Engines) {
			e := d.Engines[name]
			fmt.Fprintf(w, "  %-12s", name)
			for _, k := range sortedKeys(e) {
				if _, isMap := e[k].(map[string]any); isMap {
					continue
				}
				fmt.Fprintf(w, " %s=%s", k, number(e[k]))
			}
			fmt.Fprintln(w)
		}
	}
	if len(d.Fallbacks) > 0 {
		fmt.Fprintf(w, "fallbacks:     %s\n", counts(d.Fallbacks))
	}
	return nil
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// number prints JSON numbers that are integers without an exponent.
func number(v any) string {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1e18 {
		return strconv.FormatInt(int64(f), 10)
	}
	return fmt.Sprint(v)
}

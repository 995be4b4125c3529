package blockstore

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// The crash test: a child process (this test binary re-executed with
// -test.run=^TestCrashChild$) runs a deterministic random sequence of
// writes, truncates and Syncs over three small files and is SIGKILLed at a
// random moment. The parent replays the same sequence on a model and checks,
// after reopening the store: every Sync'ed state survived, every block is one
// of the versions the file went through since its last Sync (never torn),
// and fsck is clean.

const (
	crashFiles   = 3
	crashBS      = 4096
	crashMaxOff  = 48 << 10
	crashMaxSize = 56 << 10
	crashChunk   = 2 * crashBS // the store's write step for DirtyLimit 8 blocks
)

type crashOp struct {
	kind int // 0 write, 1 truncate, 2 sync
	file int
	off  int64
	n    int
	seed uint64
}

func nextCrashOp(rng *rand.Rand) crashOp {
	op := crashOp{file: rng.IntN(crashFiles)}
	switch r := rng.IntN(100); {
	case r < 72:
		op.kind, op.n, op.off, op.seed = 0, 1+rng.IntN(10000), rng.Int64N(crashMaxOff), rng.Uint64()
	case r < 82:
		op.kind, op.off = 1, rng.Int64N(crashMaxSize)
	default:
		op.kind = 2
	}
	return op
}

func crashData(op crashOp) []byte {
	if op.seed%3 == 0 {
		return compressible(op.n, int(op.seed%1000))
	}
	r := rand.New(rand.NewPCG(op.seed, 7))
	b := make([]byte, op.n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if op.seed%5 == 0 {
		clear(b[:op.n/2]) // some zero blocks
	}
	return b
}

func crashOpts(seed uint64) *Options {
	o := &Options{BlockSize: crashBS, Algo: codec.LZ4, LockTimeout: 2 * time.Second, DirtyLimit: 8 * crashBS, CacheBytes: 16 * crashBS}
	o.commitFloor = time.Millisecond // commits racing the writers
	switch seed % 3 {
	case 0:
		o.CommitInterval = 5 * time.Millisecond
	case 1:
		o.CommitInterval = 30 * time.Millisecond
	default:
		o.CommitInterval = -1
	}
	return o
}

func crashName(i int) string { return fmt.Sprintf("f%d", i) }

// TestCrashChild is the child side; it does nothing unless run by TestCrash.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("ACCELFS_CRASH_DIR")
	if dir == "" {
		t.Skip("child of TestCrash only")
	}
	seed, _ := strconv.ParseUint(os.Getenv("ACCELFS_CRASH_SEED"), 10, 64)
	o := crashOpts(seed)
	o.Logger = testLogger(t)
	s, err := Open(dir, o)
	if err != nil {
		fmt.Printf("E open %v\n", err)
		os.Exit(3)
	}
	var files [crashFiles]*File
	for i := range files {
		bf, err := os.OpenFile(filepath.Join(dir, crashName(i)), os.O_RDWR, 0)
		if err != nil {
			os.Exit(3)
		}
		if files[i], err = s.OpenFile(bf); err != nil {
			fmt.Printf("E openfile %v\n", err)
			os.Exit(3)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	deadline := time.Now().Add(10 * time.Second)
	out := os.Stdout
	for i := 0; time.Now().Before(deadline); i++ {
		op := nextCrashOp(rng)
		fmt.Fprintf(out, "B %d\n", i)
		f := files[op.file]
		var err error
		switch op.kind {
		case 0:
			_, err = f.WriteAt(crashData(op), op.off)
		case 1:
			err = f.Truncate(op.off)
		case 2:
			if err = f.Sync(); err == nil {
				fmt.Fprintf(out, "S %d %d\n", i, op.file)
			}
		}
		if err != nil {
			fmt.Fprintf(out, "E op %d: %v\n", i, err)
			os.Exit(3)
		}
	}
	os.Exit(0)
}

// blockHashes hashes each block of content (zero padded).
func blockHashes(content []byte) []uint64 {
	n := numBlocks(int64(len(content)), crashBS)
	hs := make([]uint64, n)
	pad := make([]byte, crashBS)
	for b := range n {
		chunk := content[b*crashBS : min(int64(len(content)), (b+1)*crashBS)]
		h := fnv.New64a()
		h.Write(chunk)
		h.Write(pad[:crashBS-len(chunk)])
		hs[b] = h.Sum64()
	}
	return hs
}

func TestCrash(t *testing.T) {
	iters := envInt("ACCELFS_CRASH_ITERS", 50)
	if testing.Short() {
		iters = min(iters, 12)
	}
	dir := t.TempDir()
	// Create the files once, durably.
	s := mustOpen(t, dir, testOpts(t, crashBS, codec.LZ4))
	for i := range crashFiles {
		f := createFile(t, s, crashName(i))
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	s.Close()
	if err := syncDir(dir); err != nil {
		t.Fatal(err)
	}
	base := make([][]byte, crashFiles)
	master := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	runSeed := master.Uint64()
	t.Logf("crash run seed %d (ACCELFS_CRASH_ITERS=%d)", runSeed, iters)
	var totalOps, totalSyncs int
	for it := range iters {
		seed := runSeed + uint64(it)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ACCELFS_CRASH_DIR="+dir, "ACCELFS_CRASH_SEED="+strconv.FormatUint(seed, 10))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		began, started := -1, make(chan struct{})
		syncs := make([]int, crashFiles)
		for i := range syncs {
			syncs[i] = -1
		}
		var childErr string
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stdout)
			first := true
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 0 {
					continue
				}
				switch f[0] {
				case "B":
					began, _ = strconv.Atoi(f[1])
					if first {
						first = false
						close(started)
					}
				case "S":
					i, _ := strconv.Atoi(f[1])
					k, _ := strconv.Atoi(f[2])
					syncs[k] = i
				case "E":
					childErr = sc.Text()
				}
			}
			io.Copy(io.Discard, stdout)
			if first {
				close(started)
			}
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("child did not start")
		}
		time.Sleep(time.Duration(master.IntN(60)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		werr := cmd.Wait()
		if childErr != "" {
			t.Fatalf("iteration %d: child failed: %s (%v)", it, childErr, werr)
		}
		// Replay the model from base, keeping, per file, the allowed block
		// hashes and sizes of every state since the file's last Sync.
		model := make([][]byte, crashFiles)
		for k := range model {
			model[k] = bytes.Clone(base[k])
		}
		allowedSize := make([]map[int64]bool, crashFiles)
		allowedHash := make([]map[int64]map[uint64]bool, crashFiles)
		record := func(k int) {
			if allowedSize[k] == nil {
				allowedSize[k], allowedHash[k] = map[int64]bool{}, map[int64]map[uint64]bool{}
			}
			allowedSize[k][int64(len(model[k]))] = true
			for b, h := range blockHashes(model[k]) {
				if allowedHash[k][int64(b)] == nil {
					allowedHash[k][int64(b)] = map[uint64]bool{}
				}
				allowedHash[k][int64(b)][h] = true
			}
		}
		for k := range crashFiles {
			if syncs[k] < 0 {
				record(k)
			}
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		// history[k][h] = the states (op index, -1 = base) whose block had hash h, for diagnostics.
		history := make([]map[uint64][]int, crashFiles)
		for k := range history {
			history[k] = map[uint64][]int{}
			for _, h := range blockHashes(model[k]) {
				history[k][h] = append(history[k][h], -1)
			}
		}
		for i := 0; i <= began; i++ {
			op := nextCrashOp(rng)
			k := op.file
			switch op.kind {
			case 0:
				// The store applies a write in block-aligned steps; a commit
				// (hence a crash) may fall between two steps.
				data, off := crashData(op), op.off
				steps := writeSteps(off, len(data), crashBS, crashChunk)
				for si, n := range steps {
					if end := off + int64(n); end > int64(len(model[k])) {
						model[k] = append(model[k], make([]byte, end-int64(len(model[k])))...)
					}
					copy(model[k][off:], data[:n])
					data, off = data[n:], off+int64(n)
					if si < len(steps)-1 && i > syncs[k] {
						record(k)
						for _, h := range blockHashes(model[k]) {
							history[k][h] = append(history[k][h], i)
						}
					}
				}
			case 1:
				if op.off < int64(len(model[k])) {
					model[k] = model[k][:op.off]
				} else {
					model[k] = append(model[k], make([]byte, op.off-int64(len(model[k])))...)
				}
			}
			if i == syncs[k] {
				allowedSize[k], allowedHash[k] = nil, nil // forget states before the sync
			}
			if i >= syncs[k] {
				record(k)
			}
			for _, h := range blockHashes(model[k]) {
				history[k][h] = append(history[k][h], i)
			}
		}
		totalOps += began + 1
		// Check the store.
		s := mustOpen(t, dir, testOpts(t, crashBS, codec.LZ4))
		for k := range crashFiles {
			f := openFile(t, s, crashName(k))
			got := readAll(t, f)
			f.Close()
			if !allowedSize[k][int64(len(got))] {
				t.Fatalf("iteration %d (seed %d): %s has size %d, not one of the sizes since its last sync (op %d) %v",
					it, seed, crashName(k), len(got), syncs[k], allowedSize[k])
			}
			for b, h := range blockHashes(got) {
				if !allowedHash[k][int64(b)][h] {
					chunk := got[b*crashBS : min(len(got), (b+1)*crashBS)]
					t.Fatalf("iteration %d (seed %d): %s block %d is torn or lost (last sync op %d, %d ops began); size %d; the block's content is that of states %v; first bytes %x",
						it, seed, crashName(k), b, syncs[k], began+1, len(got), history[k][h], chunk[:min(16, len(chunk))])
				}
			}
			base[k] = got
			if syncs[k] >= 0 {
				totalSyncs++
			}
		}
		rep, err := s.Fsck(FsckOptions{})
		if err != nil || !rep.Clean() {
			t.Fatalf("iteration %d (seed %d): fsck: %v %v", it, seed, err, rep)
		}
		if it%10 == 9 {
			// Reclaim crash leftovers now and then, as an operator would.
			if _, err := s.Fsck(FsckOptions{Repair: true}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
	}
	t.Logf("%d kills, %d ops, %d files with a sync point checked", iters, totalOps, totalSyncs)
}

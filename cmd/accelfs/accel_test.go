package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/session"
	"github.com/accelfs/accelfs/blockstore"
	"github.com/accelfs/accelfs/codec"
)

// withAccel runs fn with a cli.Context holding the accel flags parsed from
// args.
func withAccel(t *testing.T, args []string, fn func(c *cli.Context) error) {
	t.Helper()
	app := &cli.App{Commands: []*cli.Command{{Name: "x", Flags: accelFlags(), Action: fn}}}
	if err := app.Run(append([]string{"accelfs", "x"}, args...)); err != nil {
		t.Fatal(err)
	}
}

// storeRoundTrip writes files through a store whose compressor comes from
// --accel args, then reads them back through a store built from readArgs.
func TestStoreWrittenOnEmuReadsOnCPU(t *testing.T) {
	backing := t.TempDir()
	rnd := rand.New(rand.NewSource(1))
	want := map[string][]byte{}
	for i := 0; i < 6; i++ {
		b := make([]byte, 100_000+rnd.Intn(400_000))
		for j := range b {
			b[j] = "accelfs hisi_zip session\n"[rnd.Intn(25)]
		}
		want[filepath.Join(backing, "f"+string(rune('a'+i)))] = b
	}
	open := func(c *cli.Context, algo codec.ID, auto bool) (*blockstore.Store, func() any) {
		comp, metrics, closer, err := newCompressor(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closer.Close() })
		if auto {
			algo = autoAlgo(comp)
		}
		st, err := blockstore.Open(backing, &blockstore.Options{Algo: algo, AlgoSet: true, Compressor: comp, CommitInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return st, metrics
	}
	withAccel(t, []string{"--accel", "emu"}, func(c *cli.Context) error {
		st, metrics := open(c, 0, true)
		for path, data := range want {
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			if err := st.InitFile(f); err != nil {
				return err
			}
			bf, err := st.OpenFile(f)
			if err != nil {
				return err
			}
			if _, err := bf.WriteAt(data, 0); err != nil {
				return err
			}
			if err := bf.Close(); err != nil {
				return err
			}
		}
		if err := st.Close(); err != nil {
			return err
		}
		m := metrics().(session.Metrics)
		if m.Engines["hisi_zip-0"].Compress.Requests == 0 {
			t.Errorf("the emulated device compressed nothing: %+v", m)
		}
		return nil
	})
	withAccel(t, []string{"--accel", "cpu"}, func(c *cli.Context) error {
		st, metrics := open(c, codec.LZ4, false)
		defer st.Close()
		// the default emulator profile is a Kunpeng 920: zlib, no deflate
		if b := st.Stats().Blocks; b["zlib"] == 0 || len(b) != 1 {
			t.Errorf("--algo auto on emu (kunpeng920) should have stored only zlib blocks: %v", b)
		}
		for path, data := range want {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			bf, err := st.OpenFile(f)
			if err != nil {
				return err
			}
			got := make([]byte, len(data))
			if _, err := bf.ReadAt(got, 0); err != nil {
				return err
			}
			bf.Close()
			if !bytes.Equal(got, data) {
				t.Errorf("%s: read back differs on the CPU", path)
			}
		}
		m := metrics().(session.Metrics)
		if m.Engines["cpu"].Decompress.Requests == 0 || len(m.Engines) != 1 {
			t.Errorf("cpu read: %+v", m)
		}
		b, _ := json.Marshal(m)
		if !bytes.Contains(b, []byte(`"engines":{"cpu":{"requests"`)) || !bytes.Contains(b, []byte(`"fallbacks":{}`)) {
			t.Errorf("metrics JSON: %s", b)
		}
		return nil
	})
}

func TestDevicesEmuJSON(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Writer: &out, Commands: []*cli.Command{devicesCommand()}}
	if err := app.Run([]string{"accelfs", "devices", "--accel", "emu", "--json"}); err != nil {
		t.Fatal(err)
	}
	var devs []deviceInfo
	if err := json.Unmarshal(out.Bytes(), &devs); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if len(devs) != 1 || devs[0].Name != "hisi_zip-0" || devs[0].FreeQueues != 64 || devs[0].Isolated ||
		devs[0].API != "hisi_qm_v2" || strings.Join(devs[0].Algorithms, " ") != "zlib gzip" {
		t.Fatalf("devices (default profile kunpeng920): %+v", devs)
	}
	out.Reset()
	if err := app.Run([]string{"accelfs", "devices", "--accel", "emu", "--emu-profile", "kunpeng930", "--json"}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &devs); err != nil || devs[0].API != "hisi_qm_v3" || len(devs[0].Algorithms) != 4 {
		t.Fatalf("kunpeng930: %v %+v", err, devs)
	}
	out.Reset()
	if err := app.Run([]string{"accelfs", "devices", "--sysfs-root", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("no uacce devices")) {
		t.Fatalf("empty host listing: %s", out.Bytes())
	}
}

func TestBenchEmu(t *testing.T) {
	var out bytes.Buffer
	app := &cli.App{Writer: &out, Commands: []*cli.Command{benchCommand()}}
	if err := app.Run([]string{"accelfs", "bench", "--accel", "emu", "--size", "64K", "--time", "30ms", "--json"}); err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if len(rep.Results) != 3 || rep.Results[2].Engine != "hisi_zip-0" || !rep.Results[2].Auto || rep.Results[0].Auto || len(rep.Latency) == 0 {
		t.Fatalf("bench report: %+v", rep)
	}
	for _, r := range rep.Results {
		if r.CompressMBs <= 0 || r.DecompressMBs <= 0 || r.Ratio <= 0 || r.Ratio >= 1 {
			t.Fatalf("implausible result %+v", r)
		}
	}
}

func TestAccelFlagValidation(t *testing.T) {
	for _, v := range []string{"auto", "cpu", "emu", "hisi_zip-0", "hisi_sec2-12"} {
		withAccel(t, []string{"--accel", v}, func(*cli.Context) error { return nil })
	}
	app := &cli.App{Commands: []*cli.Command{{Name: "x", Flags: accelFlags(), Action: func(*cli.Context) error { return nil }}}}
	for _, args := range [][]string{{"--accel", "nope"}, {"--pollers", "0"}, {"--hw-threshold", "lots"}, {"--emu-model", "fast"}, {"--emu-profile", "kunpeng9000"}} {
		if err := app.Run(append([]string{"accelfs", "x"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestAccelDeviceName: --accel <name> finds the device in sysfs (here an
// emulator's tree standing in for /sys/class/uacce), an unknown name is a
// usage error, and a device whose queues cannot be opened (no /dev node)
// leaves the mount on the CPU with the cause counted.
func TestAccelDeviceName(t *testing.T) {
	root := t.TempDir()
	d, err := emu.New(emu.Options{SysfsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	withAccel(t, []string{"--accel", "hisi_zip-0", "--sysfs-root", root}, func(c *cli.Context) error {
		set, err := selectEngines(c)
		if err != nil {
			return err
		}
		if len(set.Devices) != 1 || set.Devices[0].Name != "hisi_zip-0" {
			t.Fatalf("devices %+v", set.Devices)
		}
		e, err := newEngine(c, nil)
		if err != nil {
			return err
		}
		defer e.Close()
		l := e.Layer
		m := l.Metrics()
		if l.HardwareFor(codec.Deflate, session.Compress) || m.Fallbacks[session.CauseOpenError] == 0 {
			t.Fatalf("unopenable device: %+v", m)
		}
		return nil
	})
	withAccel(t, []string{"--accel", "hisi_zip-9", "--sysfs-root", root}, func(c *cli.Context) error {
		if _, err := selectEngines(c); err == nil {
			t.Fatal("unknown device accepted")
		}
		return nil
	})
}

// TestAccelAutoTakesKunpeng920: `--accel auto` keeps a device that lists
// only "zlib gzip" (every Kunpeng 920); it used to keep only devices listing
// deflate, so such a host never used its accelerator. The fixture is the
// sysfs tree of the kunpeng920 profile (accel/emu/testdata).
func TestAccelAutoTakesKunpeng920(t *testing.T) {
	for profile, want := range map[string]int{"kunpeng920": 1, "kunpeng930": 1, "v3-lz4": 1} {
		root := filepath.Join("..", "..", "accel", "emu", "testdata", "sysfs", profile)
		withAccel(t, []string{"--accel", "auto", "--sysfs-root", root}, func(c *cli.Context) error {
			set, err := selectEngines(c)
			if err != nil {
				return err
			}
			defer set.Close()
			if len(set.Devices) != want {
				t.Errorf("%s: --accel auto kept %d devices, want %d", profile, len(set.Devices), want)
			}
			return nil
		})
	}
}

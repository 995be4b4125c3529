package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/accelfs/accelfs/accel/emu"
	"github.com/accelfs/accelfs/accel/uacce"
	"github.com/accelfs/accelfs/engine"
)

// deviceInfo is one line of `accelfs devices` (and one object of --json).
type deviceInfo struct {
	Name       string   `json:"name"`
	API        string   `json:"api"`
	Node       int      `json:"node"`
	FreeQueues int      `json:"free_queues"` // -1 when unknown
	Algorithms []string `json:"algorithms"`
	Isolated   bool     `json:"isolated"`
	SVA        bool     `json:"sva"`
	DevPath    string   `json:"dev_path"`
}

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:  "devices",
		Usage: "list uacce accelerator devices (hisi_zip ...)",
		Description: `Lists the uacce devices the kernel offers (/sys/class/uacce): name, api,
NUMA node, free queues (available_instances), algorithms and whether the
device is isolated. With --accel emu it lists the emulated hisi_zip device
instead (what 'accelfs mount --accel emu' uses).

Examples:
   accelfs devices
   accelfs devices --json
   accelfs devices --accel emu
   accelfs devices --accel emu --emu-profile kunpeng930`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "accel", Value: "auto", Usage: "auto (the host's devices) or emu (the emulated device)"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
			&cli.StringFlag{Name: "emu-profile", Value: emu.DefaultProfile, Usage: "with --accel emu: the device generation emulated (" + strings.Join(emu.Profiles(), ", ") + ")"},
			&cli.StringFlag{Name: "sysfs-root", Value: uacce.DefaultSysfsRoot, Hidden: true, Usage: "where uacce devices are listed (tests)"},
		},
		Action: func(c *cli.Context) error {
			var devs []uacce.Device
			switch v := c.String("accel"); v {
			case "emu":
				set, err := engine.Emulated(c.String("emu-profile"), "cpu")
				if err != nil {
					return engineErr(err)
				}
				defer set.Close()
				devs = set.Devices
			case "auto":
				var err error
				if devs, err = uacce.Discover(c.String("sysfs-root")); err != nil {
					return err
				}
			default:
				return usagef("--accel %q: want auto or emu", v)
			}
			infos := make([]deviceInfo, 0, len(devs))
			for _, d := range devs {
				infos = append(infos, deviceInfo{Name: d.Name, API: d.API, Node: d.Node,
					FreeQueues: d.AvailableInstances, Algorithms: d.Algorithms,
					Isolated: d.Isolated, SVA: d.SVA(), DevPath: d.DevPath})
			}
			w := c.App.Writer
			if c.Bool("json") {
				return printJSON(w, infos)
			}
			if len(infos) == 0 {
				_, err := fmt.Fprintln(w, "no uacce devices (the CPU engine is used; try --accel emu)")
				return err
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tAPI\tNODE\tFREE QUEUES\tALGORITHMS\tISOLATED")
			for _, d := range infos {
				free := fmt.Sprint(d.FreeQueues)
				if d.FreeQueues < 0 {
					free = "?"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%v\n", d.Name, d.API, d.Node, free, strings.Join(d.Algorithms, ","), d.Isolated)
			}
			return tw.Flush()
		},
	}
}

// Package engine turns the user's engine choice (`--accel`
// auto|cpu|emu|<device>, the emulator's profile and model, queue counts,
// size thresholds, output verification) into a running session layer and
// the blockstore.Compressor a store uses. cmd/accelfs and the integration
// tests both build their engines here, so the suite tests the production
// wiring. It imports blockstore and accel/session; neither imports it.
//
// Terms
//
//   - mode: the --accel value. "auto" uses every host uacce device that is
//     not isolated and offers at least one algorithm hisi_zip can run
//     (deflate, zlib, gzip, lz4), else the CPU only; "cpu" uses no device;
//     "emu" creates one emulated hisi_zip device (accel/emu) with a profile;
//     a device name ("hisi_zip-0") uses exactly that device and fails when it
//     is missing or isolated.
//   - profile: the generation an emulated device plays (accel/emu
//     WithProfile): its QM version and its algorithms list. The default is
//     kunpeng920 (v2, "zlib gzip"), the common machine.
//   - auto algorithm: what `--algo auto` means once the engines are known
//     (Engine.AutoAlgo): lz4 where every device in service compresses it
//     (the device writes standard lz4 blocks, the CPU decodes them), else
//     deflate where listed, else zlib (what a Kunpeng 920 lists); with no
//     device, or none in service, lz4 on the CPU. When the devices disagree
//     the first preference that every device offers wins, then the first
//     any device offers.
//   - idle device: a device that is present but will get no compression
//     work (failed self-test, no queue, or the store's algorithm is not in
//     its list). Engine.Expect logs the reason once and the session metrics
//     (`accelfs stats`) carry it.
package engine

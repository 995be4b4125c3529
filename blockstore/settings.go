package blockstore

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/accelfs/accelfs/codec"
)

// Settings are the store's persistent settings (its format file): the block
// size, fixed when the store is created, and the default compression of
// new blocks, which `accelfs set` changes and a mount's --algo/--level
// override for that mount only.
type Settings struct {
	BlockSize int    `json:"block_size"`
	Algo      string `json:"algo"`
	Level     int    `json:"level"`
}

// SettingKeys are the keys Get and ApplySetting know, in display order.
var SettingKeys = []string{"algo", "level", "block_size"}

// maxSettingLen bounds one key=value argument (no real one is near it).
const maxSettingLen = 256

func settingsOf(ff formatFile) Settings {
	return Settings{BlockSize: ff.BlockSize, Algo: ff.Algo, Level: ff.Level}
}

// Get returns one setting as text (ErrInvalid for an unknown key).
func (st Settings) Get(key string) (string, error) {
	switch key {
	case "algo":
		return st.Algo, nil
	case "level":
		return strconv.Itoa(st.Level), nil
	case "block_size":
		return strconv.Itoa(st.BlockSize), nil
	}
	return "", fmt.Errorf("%w: unknown setting %q (known: %s)", ErrInvalid, key, strings.Join(SettingKeys, ", "))
}

// ApplySetting applies one "key=value" to st and returns the result; the
// error wraps ErrInvalid for anything it does not accept. Changing algo
// without giving level resets level to the new algorithm's default (0); the
// level is checked against the algorithm by ApplySettings once all pairs
// are applied.
func ApplySetting(st Settings, kv string) (Settings, error) {
	if len(kv) > maxSettingLen {
		return st, fmt.Errorf("%w: setting of %d bytes", ErrInvalid, len(kv))
	}
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return st, fmt.Errorf("%w: %q is not key=value (e.g. algo=zstd level=3)", ErrInvalid, kv)
	}
	switch key {
	case "algo":
		id, err := codec.Parse(val)
		if err != nil {
			return st, fmt.Errorf("%w: algo: %v", ErrInvalid, err)
		}
		if id.String() != st.Algo {
			st.Algo, st.Level = id.String(), 0
		}
	case "level":
		n, err := strconv.Atoi(val)
		if err != nil || n < -128 || n > 127 {
			return st, fmt.Errorf("%w: level %q is not a small integer", ErrInvalid, val)
		}
		st.Level = n
	case "block_size":
		return st, fmt.Errorf("%w: block_size is fixed when the store is created (accelfs init --block-size)", ErrInvalid)
	default:
		return st, fmt.Errorf("%w: unknown setting %q (known: algo, level; block_size is fixed)", ErrInvalid, key)
	}
	return st, nil
}

// ApplySettings applies every key=value in order and validates the result
// (the level within the algorithm's range; 0 becomes its default).
func ApplySettings(st Settings, kvs []string) (Settings, error) {
	if len(kvs) == 0 {
		return st, fmt.Errorf("%w: no setting given (e.g. algo=zstd level=3)", ErrInvalid)
	}
	for _, kv := range kvs {
		var err error
		if st, err = ApplySetting(st, kv); err != nil {
			return st, err
		}
	}
	id, err := codec.Parse(st.Algo)
	if err != nil {
		return st, fmt.Errorf("%w: algo: %v", ErrInvalid, err)
	}
	if st.Level, err = codec.NormalizeLevel(id, st.Level); err != nil {
		return st, fmt.Errorf("%w: level: %v", ErrInvalid, err)
	}
	return st, nil
}

// ReadSettings reads the settings of the store in backingDir without
// creating or locking anything (ErrNotStore when there is no store).
func ReadSettings(backingDir string) (Settings, error) {
	root, err := openRoot(backingDir)
	if err != nil {
		return Settings{}, err
	}
	defer root.Close()
	state, err := probeStore(root)
	if err != nil {
		return Settings{}, err
	}
	if state != stateStore {
		return Settings{}, notStoreError(backingDir, state)
	}
	meta, err := openMetaDir(root, false)
	if err != nil {
		return Settings{}, err
	}
	defer meta.Close()
	ff, err := readFormatFile(meta)
	if err != nil {
		return Settings{}, err
	}
	return settingsOf(ff), nil
}

// UpdateSettings applies kvs (ApplySettings) to the store in backingDir
// and writes its format file atomically. It takes the store lock, so it
// fails with ErrLocked while the store is mounted: a running server keeps
// the compression it started with, and a change it could not see would
// read as applied when it is not. It returns the old and new settings.
func UpdateSettings(backingDir string, kvs []string, lockTimeout time.Duration) (old, cur Settings, err error) {
	if lockTimeout <= 0 {
		lockTimeout = 200 * time.Millisecond
	}
	sd, err := lockStoreDir(backingDir, lockTimeout)
	if err != nil {
		return old, cur, err
	}
	defer sd.close()
	if sd.state != stateStore {
		return old, cur, notStoreError(backingDir, sd.state)
	}
	if sd.meta, err = openMetaDir(sd.root, false); err != nil {
		return old, cur, err
	}
	ff, err := readFormatFile(sd.meta)
	if err != nil {
		return old, cur, err
	}
	old = settingsOf(ff)
	if cur, err = ApplySettings(old, kvs); err != nil {
		return old, old, err
	}
	ff.Algo, ff.Level = cur.Algo, cur.Level
	if err := writeFormatFile(sd.meta, ff); err != nil {
		return old, old, err
	}
	return old, cur, nil
}

//go:build !linux

package uacce

import "fmt"

func openDevQueue(dev Device, dir Direction) (Queue, error) {
	return nil, fmt.Errorf("uacce: open %s: uacce needs Linux: %w", dev.Name, ErrNoDevice)
}

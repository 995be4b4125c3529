package integration

import "unsafe"

// uintptrOf is the address of b's first byte (O_DIRECT alignment only).
func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

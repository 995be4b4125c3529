#include "textflag.h"

// func FullBarrier()
// DSB SY: full-system data synchronization barrier, what UADK's mb() emits on
// arm64 before a doorbell write (a DMB ISH would not order against the device).
TEXT ·FullBarrier(SB),NOSPLIT,$0-0
	DSB	$15
	RET

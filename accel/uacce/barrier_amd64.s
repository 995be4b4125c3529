#include "textflag.h"

// func FullBarrier()
TEXT ·FullBarrier(SB),NOSPLIT,$0-0
	MFENCE
	RET

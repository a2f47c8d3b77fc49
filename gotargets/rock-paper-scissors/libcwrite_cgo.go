//go:build cgo

package main

/*
#include <unistd.h>
*/
import "C"
import "unsafe"

const libcAvailable = true

// libcWrite sends one line through glibc's write(), so an LD_PRELOAD hook can see it.
// Go's own os.Stdout never calls libc: it issues the write system call directly.
func libcWrite(line []byte) (int, error) {
	n, err := C.write(1, unsafe.Pointer(&line[0]), C.size_t(len(line)))
	if n < 0 {
		return 0, err
	}
	return int(n), nil
}

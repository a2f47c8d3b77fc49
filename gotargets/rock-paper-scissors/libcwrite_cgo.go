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
	// An empty write still passes a valid pointer, as Go's own path does.
	var empty [1]byte
	buf := unsafe.Pointer(&empty[0])
	if len(line) > 0 {
		buf = unsafe.Pointer(&line[0])
	}
	n, err := C.write(1, buf, C.size_t(len(line)))
	if n < 0 {
		return 0, err
	}
	return int(n), nil
}

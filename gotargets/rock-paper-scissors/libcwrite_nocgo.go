//go:build !cgo

package main

import "errors"

const libcAvailable = false

func libcWrite(line []byte) (int, error) {
	return 0, errors.New("libc write() is not linked into the static build")
}

//go:build !unix

package server

const nonblock = 0

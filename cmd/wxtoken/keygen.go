package main

import (
	"fmt"

	"github.com/wxtoken/wxtoken/cmd/wxtoken/internal/server"
)

// keygen prints a new client key for `wxtoken serve` and the hash that goes
// into the configuration: the key to stdout's first line, for scripts.
func (c *cli) keygen(args []string) int {
	if len(args) > 0 {
		return c.usageError("keygen takes no arguments")
	}
	key, hash, err := server.GenerateKey(nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "wxtoken keygen: %v\n", err)
		return exitError
	}
	fmt.Fprintf(c.stdout, "key: %s\nkey_hash: %s\n", key, hash)
	fmt.Fprintln(c.stderr, "wxtoken keygen: give the key to the client (it is shown only now); "+
		"put key_hash under the client in the serve configuration")
	return exitOK
}

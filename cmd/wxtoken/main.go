// Command wxtoken prints a valid WeChat Official Account access_token, kept in
// the same file cache the wxtoken library uses, and demonstrates the library
// against an in-process fake of WeChat.
//
//	wxtoken get       print the access_token on stdout, and nothing else
//	wxtoken check     verify the credentials and the saved token, replacing none
//	wxtoken quota     print an API's daily quota
//	wxtoken clear-quota  reset the account's daily quotas (10 a month)
//	wxtoken serve     the central token server (--config FILE)
//	wxtoken keygen    print a new client key for serve, and its hash
//	wxtoken demo      show the library at work, with measured figures
//	wxtoken version   print the version
//	wxtoken help      print the usage
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole command, apart from the process: tests call it with buffers.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	return c.run(args)
}

// cli carries what a command may touch. The fields after getenv are left zero
// by run; tests set them to reach WeChat in-process or to shorten the demo.
type cli struct {
	stdin          io.Reader // where --secret-stdin reads
	stdout, stderr io.Writer
	getenv         func(string) string

	httpClient *http.Client // nil: the library's default client
	demoHits   int          // Gets timed by the demo's cached-hit step; 0: defaultDemoHits
}

func (c *cli) run(args []string) int {
	if len(args) == 0 {
		c.printUsage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "get":
		return c.get(args[1:])
	case "check":
		return c.check(args[1:])
	case "quota":
		return c.quota(args[1:])
	case "clear-quota":
		return c.clearQuota(args[1:])
	case "serve":
		return c.serve(args[1:])
	case "keygen":
		return c.keygen(args[1:])
	case "demo":
		return c.demo(args[1:])
	case "version", "-version", "--version":
		fmt.Fprintf(c.stdout, "wxtoken %s %s\n", moduleVersion(), runtime.Version())
		return exitOK
	case "help", "-h", "-help", "--help":
		c.printUsage(c.stdout)
		return exitOK
	}
	// Only a word that cannot be the secret is repeated (see echoable).
	if echoable(args[0]) {
		return c.usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	return c.usageError("unknown command (not repeated here: it may hold a secret); " +
		"the commands are get, check, quota, clear-quota, serve, keygen, demo, version and help")
}

// usageError reports a wrong command line on stderr, pointing at the help.
func (c *cli) usageError(msg string) int {
	fmt.Fprintf(c.stderr, "wxtoken: %s\nRun 'wxtoken help' for usage.\n", msg)
	return exitUsage
}

// moduleVersion is the version the binary was built from: a tag for
// `go install ...@v1.2.3`, "(devel)" for a build from a checkout.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

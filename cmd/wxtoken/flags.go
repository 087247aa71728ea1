package main

import (
	"flag"
	"fmt"
	"strings"
)

// A misplaced argument may well be the secret (`wxtoken --secret=...`, a value
// given to the wrong flag), and whatever the command prints may end up in a
// terminal's scrollback, a CI log or a bug report. So the command line is
// never echoed: errors name only our own flags and words that cannot be a
// secret.

// echoable reports whether arg may be repeated in an error: a short word of
// lower-case letters and dashes, such as a mistyped command or flag name. An
// AppSecret (32 hexadecimal characters) never is one.
func echoable(arg string) bool {
	if arg == "" || len(arg) > 24 {
		return false
	}
	for _, r := range arg {
		if (r < 'a' || r > 'z') && r != '-' {
			return false
		}
	}
	return true
}

// trackedValue records the name of the flag whose value failed to parse, so
// that the error can name the flag without quoting the value, as flag's own
// message does.
type trackedValue struct {
	flag.Value
	name   string
	failed *string
}

func (v *trackedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		*v.failed = v.name
		return err
	}
	return nil
}

// IsBoolFlag keeps boolean flags usable without a value.
func (v *trackedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseFlags parses args with fs and returns an error message fit to print:
// it names a flag of ours, or a mistyped flag name that is echoable, and
// never a value. The message is "" when parsing succeeded; err is flag's own
// error, for flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) (msg string, err error) {
	var failed string
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &trackedValue{Value: f.Value, name: f.Name, failed: &failed}
	})
	err = fs.Parse(args)
	if err == nil || err == flag.ErrHelp {
		return "", err
	}
	text := err.Error()
	const (
		needsValue = "flag needs an argument: -"
		undefined  = "flag provided but not defined: -"
	)
	switch {
	case failed != "":
		msg = fmt.Sprintf("invalid value for --%s", failed)
		if fs.Lookup(failed) != nil && failed == "timeout" {
			msg += " (a duration such as 10s or 1m)"
		}
	case strings.HasPrefix(text, needsValue):
		// Only a flag that is defined can need a value: the name is ours.
		msg = fmt.Sprintf("--%s needs a value", strings.TrimPrefix(text, needsValue))
	case strings.HasPrefix(text, undefined) && echoable(strings.TrimPrefix(text, undefined)):
		msg = fmt.Sprintf("unknown flag --%s", strings.TrimPrefix(text, undefined))
	case strings.HasPrefix(text, undefined):
		msg = "an unknown flag (not repeated here: it may hold a secret)"
	default:
		msg = "a malformed flag (not repeated here: it may hold a secret)"
	}
	return msg, err
}

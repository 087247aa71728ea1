package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(removeBuiltBinaryAndExit))
}

// result is what one run of the command left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runArgs runs the command as main does, with env as the whole environment.
func runArgs(env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr, func(k string) string { return env[k] })
	return result{code, stdout.String(), stderr.String()}
}

// runCLI runs the command with c's test settings (in-process HTTP client,
// shorter demo).
func runCLI(c cli, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	c.stdout, c.stderr = &stdout, &stderr
	c.getenv = func(k string) string { return env[k] }
	code := c.run(args)
	return result{code, stdout.String(), stderr.String()}
}

func TestVersionPrintsModuleAndGoVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		r := runArgs(nil, arg)
		require.Equal(t, exitOK, r.code, arg)
		assert.Equal(t, "wxtoken "+moduleVersion()+" "+runtime.Version()+"\n", r.stdout, arg)
		assert.Empty(t, r.stderr, arg)
	}
	assert.NotEmpty(t, moduleVersion())
}

func TestHelpListsCommandsFlagsAndEnvironment(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"get", "-h"}, {"get", "--help"}, {"demo", "-h"}} {
		r := runArgs(nil, args...)
		require.Equal(t, exitOK, r.code, args)
		assert.Empty(t, r.stderr, args)
		for _, want := range []string{
			"wxtoken get", "wxtoken demo", "wxtoken version", "wxtoken help",
			"--appid", "--secret", "--stable", "--base-url", "--store-dir", "--timeout", "--verbose",
			"WECHAT_APPID", "WECHAT_APPSECRET", "ps",
			`curl "https://api.weixin.qq.com/cgi-bin/menu/get?access_token=$(wxtoken get)"`,
			defaultStoreDir(),
		} {
			assert.Contains(t, r.stdout, want, args)
		}
	}
}

func TestNoCommandIsAUsageError(t *testing.T) {
	t.Parallel()
	r := runArgs(nil)
	assert.Equal(t, exitUsage, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "Usage:")
}

func TestUnknownCommandIsAUsageError(t *testing.T) {
	t.Parallel()
	r := runArgs(nil, "fetch")
	assert.Equal(t, exitUsage, r.code)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "wxtoken: unknown command \"fetch\"\nRun 'wxtoken help' for usage.\n", r.stderr)
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10_000_000: "10,000,000", 123456: "123,456"} {
		assert.Equal(t, want, thousands(n))
	}
}

func TestUsageFitsATerminal(t *testing.T) {
	t.Parallel()
	for _, line := range strings.Split(usageText, "\n") {
		if !strings.Contains(line, "curl") {
			assert.LessOrEqual(t, len([]rune(line)), 90, line)
		}
	}
}

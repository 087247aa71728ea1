package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretBytes bounds a secret file: an AppSecret is 32 characters.
const maxSecretBytes = 4 << 10

// Secrets maps a credential's name to its secret.
type Secrets map[string]string

// ResolveSecrets reads the secret of every credential that has one, from
// the environment (getenv) or a file. A secret file must be a regular file
// that neither its group nor others may read: one they can read is refused,
// naming the fix. No error quotes a secret or the variable's value.
func (cfg *Config) ResolveSecrets(getenv func(string) string) (Secrets, error) {
	secrets := Secrets{}
	var errs []error
	for _, name := range sortedKeys(cfg.Credentials) {
		c := cfg.Credentials[name]
		field := "credentials." + name
		var (
			secret string
			err    error
		)
		switch {
		case c.SecretEnv != "":
			secret = strings.TrimSpace(getenv(c.SecretEnv))
			if secret == "" {
				err = fmt.Errorf("%s.secret_env: the environment variable %s is empty or unset", field, safeEnvName(c.SecretEnv))
			}
		case c.SecretFile != "":
			secret, err = readSecretFile(c.SecretFile)
			if err != nil {
				err = fmt.Errorf("%s.secret_file: %w", field, err)
			}
		case c.Secret != "":
			secret = strings.TrimSpace(c.Secret)
		default:
			continue // a ticket: no secret of its own
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
			continue
		}
		if strings.ContainsFunc(secret, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("%w: %s: the secret holds control characters", ErrConfig, field))
			continue
		}
		secrets[name] = secret
	}
	return secrets, errors.Join(errs...)
}

// safeEnvName quotes an environment variable's name only when it looks like
// one: a secret pasted in its place is not repeated.
func safeEnvName(name string) string {
	for _, r := range name {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') || len(name) > 64 {
			return "(not a variable name)"
		}
	}
	return name
}

// readSecretFile reads a secret from path, refusing what is not a private
// regular file.
func readSecretFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return "", fmt.Errorf("cannot open it: %w", pathless(err))
	}
	defer f.Close()
	info, err := f.Stat()
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot stat it: %w", pathless(err))
	case !info.Mode().IsRegular():
		return "", errors.New("not a regular file")
	case info.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("its mode %04o lets its group or others read it: chmod 600 it", info.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read it: %w", pathless(err))
	case len(b) > maxSecretBytes:
		return "", fmt.Errorf("larger than %d bytes: not a secret", maxSecretBytes)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// pathless keeps an *os.PathError's operation and cause; the path is named
// by the field already.
func pathless(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

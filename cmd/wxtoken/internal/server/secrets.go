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

// ResolveSecrets reads the secret of every credential that has one, and the
// Redis password (under StorePassword) when the store gives one, from the
// environment (getenv) or a file. A secret file must be a regular file that
// neither its group nor others may read: one they can read is refused,
// naming the fix. Two wecom credentials of one corp whose secrets turn out
// the same are refused: they would be one token renewed by two Clients. No
// error quotes a secret or the variable's value.
func (cfg *Config) ResolveSecrets(getenv func(string) string) (Secrets, error) {
	secrets := Secrets{}
	var errs []error
	for _, name := range sortedKeys(cfg.Credentials) {
		c := cfg.Credentials[name]
		secret, err := resolveSecret("credentials."+name, c.SecretEnv, c.SecretFile, c.Secret, getenv)
		switch {
		case err != nil:
			errs = append(errs, err)
		case secret != "":
			secrets[name] = secret
		}
	}
	st := cfg.Store
	if password, err := resolveSecret("store", st.PasswordEnv, st.PasswordFile, "", getenv); err != nil {
		errs = append(errs, err)
	} else if password != "" {
		secrets[StorePassword] = password
	}
	errs = append(errs, cfg.distinctWeCom(secrets)...)
	return secrets, errors.Join(errs...)
}

// resolveSecret reads one secret given one way (the environment variable
// env, the file, or inline), "" when none is given.
func resolveSecret(field, env, file, inline string, getenv func(string) string) (string, error) {
	var (
		secret string
		err    error
	)
	switch {
	case env != "":
		secret = strings.TrimSpace(getenv(env))
		if secret == "" {
			err = fmt.Errorf("%s.%s: the environment variable %s is empty or unset", field, envField(field), safeEnvName(env))
		}
	case file != "":
		secret, err = readSecretFile(file)
		if err != nil {
			err = fmt.Errorf("%s.%s: %w", field, fileField(field), err)
		}
	case inline != "":
		secret = strings.TrimSpace(inline)
	default:
		return "", nil // a ticket: no secret of its own
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if strings.ContainsFunc(secret, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%w: %s: the secret holds control characters", ErrConfig, field)
	}
	return secret, nil
}

// envField and fileField name the fields a secret is given by: the store's
// Redis password has fields of its own names.
func envField(field string) string {
	if field == "store" {
		return "password_env"
	}
	return "secret_env"
}

func fileField(field string) string {
	if field == "store" {
		return "password_file"
	}
	return "secret_file"
}

// distinctWeCom refuses two wecom credentials of one corp with one secret,
// given by different variables or files, which Validate could not see.
func (cfg *Config) distinctWeCom(secrets Secrets) []error {
	var errs []error
	seen := map[[2]string]string{}
	for _, name := range sortedKeys(cfg.Credentials) {
		c := cfg.Credentials[name]
		secret, ok := secrets[name]
		if c.Type != TypeWeCom || !ok {
			continue
		}
		id := [2]string{c.CorpID, secret}
		if other, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%w: credentials.%s: the same corp and secret as credentials.%s: one token, "+
				"which two Clients would each renew", ErrConfig, name, other))
			continue
		}
		seen[id] = name
	}
	return errs
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

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/cmd/wxtoken/internal/server"
	"github.com/wxtoken/wxtoken/redisstore"
)

// serve runs the central token server until SIGTERM or SIGINT, then stops
// accepting connections and finishes the requests in flight.
func (c *cli) serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "")
	check := fs.Bool("check", false, "")
	if msg, err := parseFlags(fs, args); errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout)
		return exitOK
	} else if err != nil {
		return c.usageError("serve: " + msg)
	}
	switch {
	case fs.NArg() > 0:
		return c.usageError("serve takes no arguments; give the configuration with --config FILE")
	case *path == "":
		return c.usageError("serve: --config FILE is needed (see the README for a full example)")
	}
	cfg, secrets, err := c.loadServeConfig(*path)
	if err != nil {
		fmt.Fprintf(c.stderr, "wxtoken serve: %v\n", err)
		return exitError
	}
	if *check {
		fmt.Fprintf(c.stdout, "wxtoken serve: the configuration is valid: %d credentials, %d clients\n",
			len(cfg.Credentials), len(cfg.Clients))
		return exitOK
	}
	if err := c.runServer(cfg, secrets); err != nil {
		fmt.Fprintf(c.stderr, "wxtoken serve: %v\n", err)
		return exitError
	}
	return exitOK
}

// loadServeConfig reads, validates and resolves the configuration file.
func (c *cli) loadServeConfig(path string) (server.Config, server.Secrets, error) {
	f, err := os.Open(path)
	if err != nil {
		// The path is not repeated: a misplaced argument may be the secret.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return server.Config{}, nil, fmt.Errorf("--config: cannot open the file: %w", err)
	}
	defer f.Close()
	cfg, err := server.Decode(f)
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, err
	}
	if info, err := f.Stat(); err == nil && cfg.AllowInlineSecrets && info.Mode().Perm()&0o077 != 0 {
		return cfg, nil, fmt.Errorf("%w: allow_inline_secrets: the file's mode %04o lets its group or others read the secrets in it: chmod 600 it",
			server.ErrConfig, info.Mode().Perm())
	}
	secrets, err := cfg.ResolveSecrets(c.getenv)
	return cfg, secrets, err
}

// runServer serves cfg until a signal, then shuts down gracefully.
func (c *cli) runServer(cfg server.Config, secrets server.Secrets) error {
	log := serveLogger(c.stderr, cfg.LogFormat)
	store, closeStore, err := openServeStore(cfg.Store, secrets[server.StorePassword])
	if err != nil {
		return err
	}
	defer closeStore()
	opts := []server.Option{server.WithLogger(log)}
	if c.httpClient != nil {
		opts = append(opts, server.WithHTTPClient(c.httpClient))
	}
	srv, err := server.New(cfg, secrets, store, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := srv.HTTPServer()
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	// One parseable line, for supervisors and tests that listen on port 0.
	fmt.Fprintf(c.stdout, "wxtoken serve: listening on %s://%s\n", scheme, ln.Addr())
	log.Info("wxtoken serve: started", "addr", ln.Addr().String(), "credentials", len(cfg.Credentials),
		"clients", len(cfg.Clients))
	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("wxtoken serve: shutting down: finishing the requests in flight", "grace", cfg.Timeouts.Shutdown.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Shutdown)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", cfg.Timeouts.Shutdown, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", err)
	}
	log.Info("wxtoken serve: stopped")
	return nil
}

// withRedisPassword puts password in the Redis URL raw, keeping its user
// name; Validate has refused a URL that holds a password of its own beside
// one. A URL that does not parse is left for redisClient to refuse.
func withRedisPassword(raw, password string) string {
	u, err := url.Parse(raw)
	if password == "" || err != nil {
		return raw
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// serveLogger writes the server's log, access log included, on w.
func serveLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// openServeStore opens the configured Store, with password (from
// store.password_env or password_file) as the Redis password when it is not
// "". A Redis that does not answer yet is no reason not to start: /readyz
// reports it, and the Clients wait for it within their store timeout.
func openServeStore(cfg server.StoreConfig, password string) (wxtoken.Store, func(), error) {
	if cfg.Redis != "" {
		rdb, _, err := redisClient(withRedisPassword(cfg.Redis, password))
		if err != nil {
			return nil, nil, errors.New("store.redis: " + strings.TrimPrefix(err.Error(), "--redis: "))
		}
		prefix := cfg.RedisPrefix
		if prefix == "" {
			prefix = redisstore.DefaultPrefix
		}
		return redisstore.New(rdb, redisstore.WithPrefix(prefix)), func() { _ = rdb.Close() }, nil
	}
	fs, err := wxtoken.NewFileStore(cfg.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("store.dir: %w", err)
	}
	return fs, func() {}, nil
}

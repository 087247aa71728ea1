package wxtoken

import (
	"context"
	"log/slog"
)

// A library should not chatter: without WithLogger a Client logs only what
// needs a person's attention (Warn and Error: failures, fallbacks, implausible
// answers), through whatever slog.Default() is when the line is written, so a
// program that calls slog.SetDefault after New still gets them. Renewals and
// other routine events are logged at Info and Debug, for a logger the user
// passes with WithLogger.

// defaultLogger returns the logger of a Client given no WithLogger.
func defaultLogger() *slog.Logger { return slog.New(defaultHandler{}) }

// defaultHandler hands records at Warn and above to slog.Default()'s handler
// as it is at the time of each record.
type defaultHandler struct {
	attrs []slog.Attr
	group string
}

func (h defaultHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn && slog.Default().Enabled(ctx, level)
}

func (h defaultHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

// current is slog.Default()'s handler with this handler's attributes and group.
func (h defaultHandler) current() slog.Handler {
	out := slog.Default().Handler()
	if len(h.attrs) > 0 {
		out = out.WithAttrs(h.attrs)
	}
	if h.group != "" {
		out = out.WithGroup(h.group)
	}
	return out
}

func (h defaultHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if h.group != "" {
		return h.current().WithAttrs(attrs) // rare: the default of now, from here on
	}
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return h
}

func (h defaultHandler) WithGroup(name string) slog.Handler {
	if h.group != "" {
		return h.current().WithGroup(name)
	}
	h.group = name
	return h
}

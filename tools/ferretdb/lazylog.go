package main

// FerretDB v1.24.2 logs every SQL statement twice as
//
//	db.l.With(slog.Any("args", args)).DebugContext(ctx, ...)
//
// (internal/util/fsql/db.go, tx.go). slog's TextHandler formats the attributes given to
// With at once, before anyone asks whether Debug is enabled, and the args hold each
// document as JSON: with logging at warn, a pprof of links sent back to back found 8.5 %
// of FerretDB's CPU spent quoting JSON nobody reads. lazyAttrs keeps what With and
// WithGroup were given and hands it to the real handler only for a record it handles.

import (
	"context"
	"log/slog"
	"slices"
)

type lazyAttrs struct {
	base slog.Handler
	// With and WithGroup calls in order, replayed on base for a record that is logged.
	steps []func(slog.Handler) slog.Handler
}

func (h lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	out := h.base
	for _, step := range h.steps {
		out = step(out)
	}
	return out.Handle(ctx, r)
}

func (h lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.then(func(x slog.Handler) slog.Handler { return x.WithAttrs(attrs) })
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	return h.then(func(x slog.Handler) slog.Handler { return x.WithGroup(name) })
}

func (h lazyAttrs) then(step func(slog.Handler) slog.Handler) slog.Handler {
	// Clip: two loggers made from one must not share (and overwrite) a backing array.
	return lazyAttrs{base: h.base, steps: append(slices.Clip(h.steps), step)}
}

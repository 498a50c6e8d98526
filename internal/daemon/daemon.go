// Package daemon holds what the long-running binaries (coordinator,
// site-agent) share at their edge: the structured logger their config
// files describe, and the stop on signals (the first SIGINT or SIGTERM asks
// for a graceful, bounded stop; a second one stops at once).
package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Logger writes to stderr: JSON (the default, for a SIEM) or "text", at
// level ("debug", "info" (default), "warn", "error").
func Logger(format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// StopOnSignal returns a context cancelled by the first SIGINT or SIGTERM;
// a second signal exits the process with status 1.
func StopOnSignal(log *slog.Logger) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		log.Info("stopping; send the signal again to stop at once")
		cancel()
		<-sigs
		log.Warn("second signal: stopping now")
		os.Exit(1)
	}()
	return ctx
}

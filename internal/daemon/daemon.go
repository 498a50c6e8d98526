// Package daemon holds what the long-running binaries (coordinator,
// site-agent) share at their edge: the structured logger their config
// files describe, and the stop on signals (the first SIGINT or SIGTERM asks
// for a graceful, bounded stop; a second one stops at once).
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Logger writes to stderr: JSON (the default, for a SIEM) or "text", at
// level "debug", "info" (the default when empty), "warn" or "error". Any
// other format or level is an error naming the allowed values: a typo in a
// config file must not silently change what reaches the SIEM.
func Logger(format, level string) (*slog.Logger, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: want json or text", format)
}

// ParseLevel reads a log.level value: debug, info, warn or error; "" is info.
func ParseLevel(level string) (slog.Level, error) {
	switch level {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", level)
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

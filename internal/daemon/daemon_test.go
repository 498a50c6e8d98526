package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggerRefusesUnknownValues(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		want          slog.Level
		err           string
	}{
		{"", "", slog.LevelInfo, ""},
		{"text", "debug", slog.LevelDebug, ""},
		{"json", "warn", slog.LevelWarn, ""},
		{"json", "error", slog.LevelError, ""},
		{"json", "verbose", 0, "want debug, info, warn or error"},
		{"json", "INFO+2", 0, "log.level"},
		{"xml", "info", 0, "want json or text"},
	} {
		l, err := Logger(tc.format, tc.level)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Logger(%q, %q) error %v, want %q", tc.format, tc.level, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Logger(%q, %q): %v", tc.format, tc.level, err)
			continue
		}
		if !l.Enabled(context.Background(), tc.want) || (tc.want > slog.LevelDebug && l.Enabled(context.Background(), tc.want-4)) {
			t.Errorf("Logger(%q, %q) is not at level %v", tc.format, tc.level, tc.want)
		}
	}
}

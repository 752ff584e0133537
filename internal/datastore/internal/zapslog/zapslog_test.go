package zapslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestLevels(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if Level(l) != zapcore.ErrorLevel {
		t.Fatalf("Level without debug = %v", Level(l))
	}
	z := New(l, Level(l)).Named("etcd-client").With(zap.String("member", "m1"))
	z.Warn("dropped")
	z.Error("kept", zap.Int("attempt", 3))
	out := buf.String()
	if strings.Contains(out, "dropped") {
		t.Errorf("warn passed an error-level bridge: %s", out)
	}
	for _, want := range []string{"level=ERROR", "msg=kept", "component=etcd", "logger=etcd-client", "member=m1", "attempt=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %s", want, out)
		}
	}

	dbg := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if Level(dbg) != zapcore.InfoLevel {
		t.Errorf("Level with debug = %v", Level(dbg))
	}
	New(nil, zapcore.DebugLevel).Error("nowhere") // must not panic
}

package logger

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	dblog "github.com/lni/dragonboat/v4/logger"
)

var routeOnce sync.Once

// RouteDragonboatLogs sends dragonboat's own logs to l, dropping those below
// level. dragonboat keeps one process-wide logger factory, so only the
// first call has an effect; call it from main (or a test's setup) before
// starting a Node.
func RouteDragonboatLogs(l *slog.Logger, level slog.Level) {
	routeOnce.Do(func() {
		dblog.SetLoggerFactory(func(pkg string) dblog.ILogger {
			return &dbLogger{l: l.With("component", "dragonboat", "pkg", pkg), level: level}
		})
	})
}

type dbLogger struct {
	mu    sync.Mutex
	l     *slog.Logger
	level slog.Level
}

func (d *dbLogger) SetLevel(lv dblog.LogLevel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch lv {
	case dblog.CRITICAL, dblog.ERROR:
		d.level = max(d.level, slog.LevelError)
	case dblog.WARNING:
		d.level = max(d.level, slog.LevelWarn)
	}
}

func (d *dbLogger) logf(lv slog.Level, format string, args ...interface{}) {
	d.mu.Lock()
	min := d.level
	d.mu.Unlock()
	if lv < min {
		return
	}
	d.l.Log(context.Background(), lv, fmt.Sprintf(format, args...))
}

func (d *dbLogger) Debugf(format string, args ...interface{}) {
	d.logf(slog.LevelDebug, format, args...)
}
func (d *dbLogger) Infof(format string, args ...interface{}) { d.logf(slog.LevelInfo, format, args...) }
func (d *dbLogger) Warningf(format string, args ...interface{}) {
	d.logf(slog.LevelWarn, format, args...)
}
func (d *dbLogger) Errorf(format string, args ...interface{}) {
	d.logf(slog.LevelError, format, args...)
}
func (d *dbLogger) Panicf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	d.l.Error(msg)
	panic(msg)
}

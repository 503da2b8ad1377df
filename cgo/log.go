package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/csctoken/csctoken/module"
)

// logPanic records a panic caught at the C boundary in the module log
// ($CSCTOKEN_LOG; off by default). The module logs its own events there;
// this covers the conversion code of this package. Nothing about the call's
// arguments is written, so no PIN can leak.
func logPanic(op string, r any) {
	path := os.Getenv(module.EnvLog)
	if path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	slog.New(slog.NewTextHandler(f, nil)).Error("panic recovered at the C ABI",
		"pid", os.Getpid(), "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

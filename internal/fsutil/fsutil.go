// Package fsutil reads the small files a program is pointed at by its
// configuration (a config file, a CA file, a cache) safely: only regular
// files, never more than a stated size, never blocking on a FIFO or a
// device. A path to /dev/urandom or a named pipe is a configuration error
// reported at once, not a hang or a gigabyte read.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotRegular is returned for a path that is not a regular file
// (directory, FIFO, device, socket).
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned for a file larger than the bound.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path, of at most max bytes. A missing
// file is an error matching fs.ErrNotExist, as for os.ReadFile.
func ReadFile(path string, max int64) ([]byte, error) {
	// Stat first: a FIFO or a device is refused without being opened (an
	// open of a FIFO for reading waits for a writer).
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, st, max); err != nil {
		return nil, err
	}
	// The file may have been replaced since: open without blocking and
	// check what was opened.
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := check(path, st, max); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}

// Check says whether path names a regular file of at most max bytes,
// without reading it (for diagnostics such as csctoken doctor).
func Check(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return check(path, st, max)
}

func check(path string, st os.FileInfo, max int64) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, kind(st.Mode()))
	}
	if st.Size() > max {
		return fmt.Errorf("%s: %w (%d bytes, at most %d)", path, ErrTooLarge, st.Size(), max)
	}
	return nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

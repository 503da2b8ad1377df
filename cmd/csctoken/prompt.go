package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// lineReader reads secrets line by line from stdin (--password-stdin,
// --pin-stdin), so that several can follow each other.
type lineReader struct {
	r   io.Reader
	buf *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: r} }

// line reads one line without its end of line; io.EOF only when nothing
// at all was left.
func (l *lineReader) line() (string, error) {
	if l.buf == nil {
		l.buf = bufio.NewReaderSize(l.r, 4096)
	}
	s, err := l.buf.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// terminal returns stdin as a terminal's file descriptor, if it is one.
func (l *lineReader) terminal() (int, bool) {
	f, ok := l.r.(*os.File)
	if !ok || l.buf != nil && l.buf.Buffered() > 0 {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// secret reads a secret: a line of stdin with fromStdin, else a prompt on
// the terminal without echo. what names it in messages ("password",
// "PIN"); flag is the flag that reads it from stdin.
func (c *cli) secret(prompt, what, flag string, fromStdin bool) (string, error) {
	if fromStdin {
		s, err := c.input.line()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: no %s on stdin", flag, what)
		}
		if err != nil {
			return "", fmt.Errorf("read %s from stdin: %w", what, err)
		}
		return s, nil
	}
	fd, ok := c.input.terminal()
	if !ok {
		return "", fmt.Errorf("stdin is not a terminal to ask for the %s; pass it on stdin with %s", what, flag)
	}
	fmt.Fprint(c.stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return string(b), nil
}

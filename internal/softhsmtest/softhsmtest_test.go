package softhsmtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tok := New(t)
	if got := os.Getenv(EnvConf); got != tok.ConfPath {
		t.Fatalf("%s = %q, want %q", EnvConf, got, tok.ConfPath)
	}
	_, util, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(util, "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("--show-slots: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Label:            "+tok.Label) {
		t.Fatalf("token %q not listed:\n%s", tok.Label, out)
	}
}

// fakeTB records how unavailable ends the test.
type fakeTB struct {
	testing.TB
	outcome string
}

type stop struct{}

func (f *fakeTB) Helper()                       {}
func (f *fakeTB) Fatalf(string, ...any)         { f.outcome = "fail"; panic(stop{}) }
func (f *fakeTB) Skipf(format string, a ...any) { f.outcome = "skip"; panic(stop{}) }

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name    string
		lib     string // SOFTHSM2_LIB
		require string
		paths   []string
		want    string
	}{
		{"skip when not installed", "", "", []string{"/nonexistent/libsofthsm2.so"}, "skip"},
		{"fail when not installed and required", "", "1", []string{"/nonexistent/libsofthsm2.so"}, "fail"},
		{"fail on a wrong override", "/nonexistent/libsofthsm2.so", "", LibraryPaths, "fail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvLib, tt.lib)
			t.Setenv(EnvRequire, tt.require)
			saved := LibraryPaths
			LibraryPaths = tt.paths
			t.Cleanup(func() { LibraryPaths = saved })

			f := &fakeTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(stop); !ok {
							panic(r)
						}
					}
				}()
				New(f)
			}()
			if f.outcome != tt.want {
				t.Fatalf("outcome = %q, want %q", f.outcome, tt.want)
			}
		})
	}
}

// Command mkpkg builds csctoken's Linux packages with nfpm, as a library:
// csctoken and rssp, each as a .deb and an .rpm, from the nfpm
// configurations in installer/linux (csctoken.yaml, rssp.yaml). `make
// packages` runs it after building stripped binaries and the man pages:
//
//	go run ./mkpkg -src linux -bin ../build/pkg -man ../build/man -out ../build/dist \
//	    -describe "$(git describe --tags --long --always --dirty --match 'v[0-9]*')" \
//	    -commits "$(git rev-list --count HEAD)" -date "$(git log -1 --format=%ct)"
//
// The package version comes from git describe (see packageVersion);
// -version sets it instead (the upgrade test builds a newer one). File
// times are the commit's (-date), so two builds of one commit are the same
// packages.
//
// The configurations name their inputs as ${…}, expanded here:
// ${VERSION}, ${SRC} (installer/linux), ${BIN} (libcsctoken.so, csctoken,
// rssp), ${STAGE} (the gzipped man pages and the changelog made here),
// ${MAINTAINER}, ${HOMEPAGE}, ${LICENSE}.
//
// This program lives in its own Go module (installer/go.mod) so that nfpm
// and its dependencies never enter the product's dependency graph.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

// Fields of every package.
const (
	maintainer = "csctoken maintainers <csctoken@users.noreply.github.com>"
	homepage   = "https://github.com/csctoken/csctoken"
	license    = "LicenseRef-csctoken-unlicensed"
)

type options struct {
	src, bin, man, out string
	describe           string
	commits            int
	version            string
	date               time.Time
	packages, formats  []string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkpkg: ")
	var o options
	var packages, formats string
	var date int64
	flag.StringVar(&o.src, "src", "linux", "directory of the nfpm configurations and the files they package")
	flag.StringVar(&o.bin, "bin", "../build/pkg", "directory of the stripped libcsctoken.so, csctoken and rssp")
	flag.StringVar(&o.man, "man", "../build/man", "directory of csctoken.1 and rssp.8")
	flag.StringVar(&o.out, "out", "../build/dist", "where the packages go")
	flag.StringVar(&o.describe, "describe", "", "output of git describe --tags --long --always --dirty --match 'v[0-9]*'")
	flag.IntVar(&o.commits, "commits", 0, "number of commits (git rev-list --count HEAD), for an untagged tree")
	flag.StringVar(&o.version, "version", "", "the package version (default: from -describe)")
	flag.Int64Var(&date, "date", 0, "time of the build's commit, Unix seconds (default: $SOURCE_DATE_EPOCH, else now)")
	flag.StringVar(&packages, "packages", "csctoken,rssp", "packages to build")
	flag.StringVar(&formats, "formats", "deb,rpm", "package formats")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected argument %q", flag.Arg(0))
	}
	o.packages, o.formats = strings.Split(packages, ","), strings.Split(formats, ",")
	switch {
	case date != 0:
		o.date = time.Unix(date, 0).UTC()
	case os.Getenv("SOURCE_DATE_EPOCH") != "":
		sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		if err != nil {
			log.Fatalf("$SOURCE_DATE_EPOCH: %v", err)
		}
		o.date = time.Unix(sec, 0).UTC()
	default:
		o.date = time.Now().UTC().Truncate(time.Second)
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	if o.version == "" {
		v, err := packageVersion(o.describe, o.commits)
		if err != nil {
			return err
		}
		o.version = v
	} else if err := checkVersion(o.version); err != nil {
		return fmt.Errorf("-version: %w", err)
	}
	for _, d := range []*string{&o.src, &o.bin, &o.man, &o.out} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return err
		}
		*d = abs
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	stage, err := os.MkdirTemp("", "mkpkg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	if err := prepare(o, stage); err != nil {
		return err
	}
	for _, pkg := range o.packages {
		for _, format := range o.formats {
			start := time.Now()
			file, err := build(o, stage, pkg, format)
			if err != nil {
				return fmt.Errorf("%s %s: %w", pkg, format, err)
			}
			st, err := os.Stat(file)
			if err != nil {
				return err
			}
			fmt.Printf("%s (%.1f MB, %v)\n", file, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// prepare writes into stage what the packages take besides the sources:
// the man pages gzipped (Debian policy; reproducibly, without a name or a
// time in the header) and a changelog per format.
func prepare(o options, stage string) error {
	for _, page := range []string{"csctoken.1", "rssp.8"} {
		data, err := os.ReadFile(filepath.Join(o.man, page))
		if err != nil {
			return fmt.Errorf("man page: %w", err)
		}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(stage, page+".gz"), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	for _, format := range []string{"deb", "rpm"} {
		if err := os.WriteFile(filepath.Join(stage, "changelog."+format+".yml"), changelog(o, format), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// changelog is the package's changelog in nfpm's (chglog's) YAML: one entry
// for this build. The Debian entry carries the full version with its
// revision; the RPM one a semantic version (its template parses it).
func changelog(o options, format string) []byte {
	semver := o.version + "-1"
	if format == "rpm" {
		semver = strings.Replace(o.version, "~", "-", 1)
	}
	what := "Build of git " + o.describe
	if o.describe == "" {
		what = "Build " + o.version
	}
	return []byte(fmt.Sprintf(`- semver: %q
  date: %q
  packager: %q
  deb:
    urgency: low
    distributions: [unstable]
  changes:
    - note: %q
`, semver, o.date.Format(time.RFC3339), maintainer, what+"; the project's history is its git log."))
}

// build makes one package and returns its path.
func build(o options, stage, pkg, format string) (string, error) {
	vars := map[string]string{
		"VERSION":    o.version,
		"SRC":        o.src,
		"BIN":        o.bin,
		"STAGE":      stage,
		"CHANGELOG":  filepath.Join(stage, "changelog."+format+".yml"),
		"MAINTAINER": maintainer,
		"HOMEPAGE":   homepage,
		"LICENSE":    license,
	}
	// nfpm expands variables in a few fields only: expand the whole file
	// here, refusing unknown names.
	text, err := os.ReadFile(filepath.Join(o.src, pkg+".yaml"))
	if err != nil {
		return "", err
	}
	var missing []string
	expanded := os.Expand(string(text), func(k string) string {
		v, ok := vars[k]
		if !ok {
			missing = append(missing, k)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variables in %s.yaml: %s", pkg, strings.Join(missing, ", "))
	}
	cfg, err := nfpm.ParseWithEnvMapping(strings.NewReader(expanded), func(string) string { return "" })
	if err != nil {
		return "", fmt.Errorf("%s.yaml: %w", pkg, err)
	}
	info, err := cfg.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	info.MTime = o.date
	if err := nfpm.Validate(info); err != nil {
		return "", err
	}
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	file := filepath.Join(o.out, packager.ConventionalFileName(info))
	tmp, err := os.CreateTemp(o.out, ".mkpkg-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := packager.Package(info, tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return file, os.Rename(tmp.Name(), file)
}

// packageVersion turns git describe --tags --long --always --dirty output
// into a version that dpkg and rpm both accept and order as git does:
//
//	v1.2.3-0-gabc1234        1.2.3                      (a release tag)
//	v1.2.3-5-gabc1234        1.2.3+git5.gabc1234        (5 commits after it: newer)
//	v1.3.0-rc1-2-gabc1234    1.3.0~rc1+git2.gabc1234    (~: before 1.3.0)
//	abc1234 (no tag)         0.0.0+git52.gabc1234       (commits = 52)
//	…-dirty                  ….dirty                    (uncommitted changes)
//
// The commit count keeps untagged builds in order (the hash alone would not).
func packageVersion(describe string, commits int) (string, error) {
	d := strings.TrimSpace(describe)
	if d == "" {
		return "", errors.New("no -describe (git describe) and no -version")
	}
	dirty := strings.HasSuffix(d, "-dirty")
	d = strings.TrimSuffix(d, "-dirty")
	var v string
	parts := strings.Split(d, "-")
	n := len(parts)
	if n >= 3 && strings.HasPrefix(parts[n-1], "g") && isDigits(parts[n-2]) && strings.HasPrefix(parts[0], "v") {
		base := strings.TrimPrefix(strings.Join(parts[:n-2], "-"), "v")
		if pre, rest, ok := strings.Cut(base, "-"); ok {
			base = pre + "~" + strings.ReplaceAll(rest, "-", ".")
		}
		v = base
		if parts[n-2] != "0" {
			v += "+git" + parts[n-2] + "." + parts[n-1]
		}
	} else if isHex(d) {
		if commits <= 0 {
			return "", fmt.Errorf("git describe %q names no tag: give -commits", describe)
		}
		v = fmt.Sprintf("0.0.0+git%d.g%s", commits, d)
	} else {
		return "", fmt.Errorf("git describe %q: expected vX.Y.Z-N-gHASH or a bare hash", describe)
	}
	if dirty {
		v += ".dirty"
	}
	if err := checkVersion(v); err != nil {
		return "", fmt.Errorf("git describe %q: %w", describe, err)
	}
	return v, nil
}

// checkVersion accepts what is valid as both a Debian upstream version
// (without an epoch or a revision) and an RPM version: it starts with a
// digit and holds only letters, digits and . + ~.
func checkVersion(v string) error {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return fmt.Errorf("version %q must start with a digit", v)
	}
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '.', r == '+', r == '~':
		default:
			return fmt.Errorf("version %q: %q is not allowed in a package version", v, r)
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	if len(s) < 4 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

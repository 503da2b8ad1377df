// Package configdoc checks that docs/configuration.md, the reference of
// csctoken.toml and rssp.toml, names every key the programs read: the
// tests of module/config and rssp/config call Missing with their file's
// struct, so a key added to the code without its line in the reference
// fails them.
package configdoc

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
)

// Keys lists the dotted TOML keys of a struct type (tables and arrays of
// tables become prefixes: "tls.cert", "service.url").
func Keys(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !implementsText(ft) {
			for _, k := range Keys(ft) {
				keys = append(keys, name+"."+k)
			}
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

// implementsText: a struct read from a TOML string (config.Duration).
func implementsText(t reflect.Type) bool {
	_, ok := reflect.PointerTo(t).MethodByName("UnmarshalText")
	return ok
}

// Reference reads docs/configuration.md's section of one file (the text
// from the heading "## FILE" to the next "## ").
func Reference(file string) (string, error) {
	_, here, _, _ := runtime.Caller(0)
	doc := filepath.Join(filepath.Dir(here), "..", "..", "docs", "configuration.md")
	b, err := os.ReadFile(doc)
	if err != nil {
		return "", err
	}
	_, sec, ok := strings.Cut(string(b), "\n## "+file+"\n")
	if !ok {
		return "", fmt.Errorf("%s has no section \"## %s\"", doc, file)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec, nil
}

// Missing lists the keys of t that the reference of file does not name
// (as `key`, in backquotes).
func Missing(file string, t reflect.Type) ([]string, error) {
	sec, err := Reference(file)
	if err != nil {
		return nil, err
	}
	keys := Keys(t)
	if len(keys) == 0 {
		return nil, fmt.Errorf("%v has no toml keys", t)
	}
	var missing []string
	for _, k := range keys {
		if !strings.Contains(sec, "`"+k+"`") {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

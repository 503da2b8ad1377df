package config

import (
	"reflect"
	"testing"

	"github.com/csctoken/csctoken/internal/configdoc"
)

// TestReference: docs/configuration.md names every key of rssp.toml.
func TestReference(t *testing.T) {
	missing, err := configdoc.Missing("rssp.toml", reflect.TypeFor[Config]())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range missing {
		t.Errorf("docs/configuration.md does not describe the rssp.toml key `%s`", k)
	}
}

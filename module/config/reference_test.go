package config

import (
	"reflect"
	"testing"

	"github.com/csctoken/csctoken/internal/configdoc"
)

// TestReference: docs/configuration.md names every key of csctoken.toml.
func TestReference(t *testing.T) {
	missing, err := configdoc.Missing("csctoken.toml", reflect.TypeFor[rawConfig]())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range missing {
		t.Errorf("docs/configuration.md does not describe the csctoken.toml key `%s`", k)
	}
}

package module

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/objects/objectstest"
)

// benchToken is a token of a fresh state, as Initialize makes it.
func benchToken(dir string) *token {
	st := &state{ctx: context.Background(), log: discard, opts: &Options{Now: time.Now}}
	sc := config.Service{Name: "bench", URL: "https://rssp.example/csc/v2", Auth: config.AuthBasic, Username: "bench"}
	return newToken(st, 0, sc, dir)
}

// BenchmarkLoadCache: loading the listing cache of n credentials, as
// C_Initialize does (read, decode, objects), and then finding every
// certificate.
func BenchmarkLoadCache(b *testing.B) {
	for _, n := range []int{2, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			creds := objectstest.Generate(b, n)
			dir := b.TempDir()
			benchToken(dir).saveCache(creds)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				t := benchToken(dir)
				t.loadCache()
				if got := len(t.objects().List); got < 3*n {
					b.Fatalf("%d objects", got)
				}
			}
		})
	}
}

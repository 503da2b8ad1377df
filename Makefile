# csctoken — see README.md. Targets: build, test, demo, bench, clean.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 5s

# Packages tested with the race detector (concurrency lives there).
RACE_PKGS := ./csc/... ./rssp/service/... ./rssp/store/... ./rssp/keystore/... ./rssp/server/...

# Fuzz targets run briefly in make test: package:target.
FUZZ := ./csc:FuzzDecodeBase64 ./csc:FuzzParsePSSParams

.PHONY: all build test check unit race fuzz demo bench clean

all: build

build: build/rssp

build/rssp: FORCE
	@mkdir -p build
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/rssp

FORCE:

test: check unit race fuzz

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: build
	$(GO) test -count=1 ./...

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

fuzz:
	@set -e; for f in $(FUZZ); do \
	  pkg=$${f%%:*}; target=$${f##*:}; \
	  echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg >/dev/null; \
	done

demo:
	bash scripts/demo.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchtime=2s ./rssp/keystore/... ./rssp/store/... ./rssp/server/...

clean:
	rm -rf build

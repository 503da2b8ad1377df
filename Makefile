# csctoken — see README.md. Targets: deps, build, test, test-deps, demo, bench, man, clean.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Fuzzing budget: each target's own execution count (about 5 s here; see
# scripts/fuzz.sh), or FUZZTIME (30s, 100000x) for all of them.
FUZZTIME ?=

# Packages tested again with the race detector (their concurrency matters).
RACE_PKGS := ./csc/... ./module/... ./cscclient/... ./rssp/service/... ./rssp/store/... \
	./rssp/keystore/... ./rssp/server/...

# Fuzz targets run briefly in make test: package:target:executions.
FUZZ := ./csc:FuzzDecodeBase64:200000 ./csc:FuzzParsePSSParams:150000 \
	./csc:FuzzUniqueNames:100000 ./module/objects:FuzzDigestInfo:100000 ./module/objects:FuzzMatch:100000 ./module/objects:FuzzDecodeCache:80000 \
	./module/config:FuzzLoad:2000 \
	./cscclient:FuzzDecodeInfo:20000 ./cscclient:FuzzDecodeCredentialInfo:20000 \
	./cscclient:FuzzDecodeSignHash:20000 ./cscclient:FuzzErrorBody:15000 ./cscclient:FuzzECDSA:20000 \
	./rssp/server:FuzzV2Handlers:3000 ./rssp/server:FuzzV1Handlers:3000 ./rssp/server:FuzzOAuthForms:3000

.PHONY: all deps test-deps build test check lint hydra unit race fuzz keyring demo bench man packages package-test clean FORCE

all: build

build: build/libcsctoken.so build/rssp build/csctoken

build/libcsctoken.so: FORCE
	@mkdir -p build
	$(GO) build -trimpath -buildmode=c-shared -ldflags "$(LDFLAGS)" -o $@ ./cgo
	@rm -f build/libcsctoken.h

build/rssp: FORCE
	@mkdir -p build
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/rssp

build/csctoken: FORCE
	@mkdir -p build
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/csctoken

FORCE:

# Windows x64: build/windows/csctoken.dll and csctoken.exe, and
# build/csctoken-$(VERSION)-x64.msi, Authenticode-signed through
# build/libcsctoken.so (installer/windows/build.sh says with which key).
windows: build
	GO=$(GO) VERSION=$(VERSION) bash installer/windows/build.sh

# Manual pages, generated from the commands themselves (their help):
# build/man/csctoken.1 and build/man/rssp.8. SOURCE_DATE_EPOCH fixes the
# date for reproducible packages.
man: build/rssp build/csctoken
	@mkdir -p build/man
	build/csctoken gen-man >build/man/csctoken.1
	build/rssp gen-man >build/man/rssp.8

# The Debian packages (scripts/deps.sh): deps for building and the README's
# path, test-deps for everything make test runs. As root they are
# installed; otherwise the missing ones are named. make test checks first.
deps:
	@bash scripts/deps.sh build

test-deps:
	@bash scripts/deps.sh test

test: test-deps check lint unit keyring race fuzz package-test

# staticcheck and errcheck, pinned in tools/go.mod (a module of its own, so
# the project's dependencies stay clean). The binaries are rebuilt only
# when tools/go.mod changes; staticcheck keeps its analysis cache in
# ~/.cache/staticcheck, so a second run takes seconds.
TOOLS := build/tools/staticcheck build/tools/errcheck
$(TOOLS): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o ../build/tools/ honnef.co/go/tools/cmd/staticcheck github.com/kisielk/errcheck

# ORY Hydra, the external authorization server of the tests
# (docs/external-as.md): built from tools/hydra (a module of its own) into
# $${XDG_CACHE_HOME:-~/.cache}/csctoken/hydra-<hash of its go.mod and go.sum>
# the first time (minutes), then reused.
hydra:
	@GO=$(GO) bash scripts/hydra.sh >/dev/null

lint: $(TOOLS)
	build/tools/staticcheck ./...
	build/tools/errcheck -ignoretests -exclude tools/errcheck_excludes.txt ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: build hydra
	$(GO) test -count=1 ./...
	# the OAuth2 client against the real rssp (-tags rssp: the client's
	# default tests build no server package)
	$(GO) test -count=1 -tags rssp -run TestBrowser ./cscclient/oauth/

race:
	$(GO) test -count=1 -race $(RACE_PKGS)

# The OS keyring for real: a Secret Service (gnome-keyring) in a private
# D-Bus session, with its files in a temporary directory.
keyring:
	@if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null; then \
	  tmp=$$(mktemp -d) && XDG_DATA_HOME=$$tmp/data XDG_CACHE_HOME=$$tmp/cache dbus-run-session -- sh -c \
	    'echo -n csctoken-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null && CSCTOKEN_REQUIRE_KEYRING=1 $(GO) test -count=1 -run TestRealKeyring ./cscclient/tokenstore/'; \
	  rc=$$?; rm -rf $$tmp; exit $$rc; \
	elif [ -n "$$CSCTOKEN_REQUIRE_KEYRING$$CI" ]; then echo "keyring test needs dbus and gnome-keyring" >&2; exit 1; \
	else echo "keyring test skipped: install dbus gnome-keyring libsecret-tools"; fi

fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh $(FUZZ)

# The fault and load suite (tests/soak, docs/security.md): a real rssp under
# load, kill -9, a full disk (as root), network faults, a flood of bad
# logins. make unit runs it short (3 s phases, 200 bad logins); this is the
# longer run: make soak SOAK_TIME=5m SOAK_BAD_LOGINS=500.
SOAK_TIME ?= 30s
SOAK_BAD_LOGINS ?= 500
soak:
	CSCTOKEN_SOAK_TIME=$(SOAK_TIME) CSCTOKEN_SOAK_BAD_LOGINS=$(SOAK_BAD_LOGINS) \
	  $(GO) test -count=1 -v -timeout 120m -run TestSoak ./tests/soak/

demo:
	bash scripts/demo.sh

# Linux packages (installer/README.md): csctoken and rssp as .deb and .rpm in
# build/dist, built by installer/mkpkg (nfpm, in installer/'s own Go module)
# from the stripped library, the executables built again as PIE (ASLR; what
# Debian's hardening checks ask) and the man pages of make man. The
# version comes from git describe; PKG_VERSION overrides it.
PKG_VERSION ?=
packages: build man
	@rm -rf build/pkg build/dist && mkdir -p build/pkg build/dist
	strip --remove-section=.comment --remove-section=.note --strip-unneeded -o build/pkg/libcsctoken.so build/libcsctoken.so
	$(GO) build -trimpath -buildmode=pie -ldflags "$(LDFLAGS) -s -w" -o build/pkg/csctoken ./cmd/csctoken
	$(GO) build -trimpath -buildmode=pie -ldflags "$(LDFLAGS) -s -w" -o build/pkg/rssp ./cmd/rssp
	strip --remove-section=.comment --remove-section=.note build/pkg/csctoken build/pkg/rssp
	cd installer && $(GO) run ./mkpkg -src linux -bin ../build/pkg -man ../build/man -out ../build/dist \
	  -describe "$$(git describe --tags --long --always --dirty --match 'v[0-9]*')" \
	  -commits "$$(git rev-list --count HEAD)" -date "$$(git log -1 --format=%ct)" -version "$(PKG_VERSION)"


# The packages installed on this machine and checked (tests/packages): as
# root, the tests install, upgrade and purge the .debs, check the .rpms in a
# scratch root and run lintian; they restore what they touch. mkpkg's own
# unit tests run here too (installer/ is a Go module of its own).
package-test: packages
	cd installer && $(GO) test -count=1 ./...
	CSCTOKEN_PACKAGE_TESTS=1 $(GO) test -count=1 -timeout 20m -v ./tests/packages/

bench:
	$(GO) test -run='^$$' -bench=. -benchtime=2s ./rssp/keystore/... ./rssp/store/... ./rssp/server/...
	$(GO) test -run='^$$' -bench=. -benchtime=1s -timeout=30m ./bench/...

clean:
	rm -rf build

#!/usr/bin/env bash
# build.sh: `make windows`. Cross-builds csctoken.dll (the PKCS#11 module)
# and csctoken.exe (the CLI) for Windows x64 with mingw-w64, packs them into
# csctoken-VERSION-x64.msi with wixl, and Authenticode-signs the DLL, the
# EXE and the MSI with osslsigncode THROUGH libcsctoken.so: the product
# signs its own installer with a code-signing key of a CSC service.
#
# Signing with the real service (a release): log in once with
# `csctoken login` using that config, then
#   CSCTOKEN_SIGN_CONFIG=/path/csctoken.toml      the service (csctoken.toml)
#   CSCTOKEN_SIGN_KEY='pkcs11:token=…;object=…'    the code-signing key (no type=)
#   CSCTOKEN_SIGN_PIN_FILE=/path/pin              its credential PIN (osslsigncode -readpass)
#   CSCTOKEN_SIGN_CHAIN=/path/intermediates.pem   optional: certificates to embed
#   CSCTOKEN_SIGN_TIMESTAMP=http://…              optional: an RFC 3161 TSA
#   make windows
# Without CSCTOKEN_SIGN_CONFIG (a developer's build, the tests) the script
# starts a throwaway rssp on 127.0.0.1 with a code-signing credential from
# its built-in CA, signs with it, and leaves that CA's root in
# $OUT/test-signing-root.pem: the signatures verify against that root only
# (`osslsigncode verify -CAfile …`), Windows does not trust them.
#
# Environment: GO, VERSION (git describe), OUT (build/windows), MSIDIR
# (build), and the Linux binaries RSSP, CSCTOKEN, LIBCSCTOKEN (build/…).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
OUT=${OUT:-build/windows}
MSIDIR=${MSIDIR:-build}
RSSP=${RSSP:-build/rssp}
CSCTOKEN=${CSCTOKEN:-build/csctoken}
LIBCSCTOKEN=${LIBCSCTOKEN:-build/libcsctoken.so}
case $LIBCSCTOKEN in /*) ;; *) LIBCSCTOKEN=$root/$LIBCSCTOKEN ;; esac
CC_WIN=x86_64-w64-mingw32-gcc
ENGINE=/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so

missing=()
for c in "$CC_WIN" wixl osslsigncode pkg-config openssl; do command -v "$c" >/dev/null || missing+=("$c"); done
[ -f "$ENGINE" ] || missing+=("$ENGINE")
if ((${#missing[@]})); then
  echo "make windows needs: ${missing[*]}" >&2
  echo "  apt-get install gcc-mingw-w64-x86-64 wixl msitools osslsigncode libengine-pkcs11-openssl pkg-config libp11-kit-dev openssl" >&2
  exit 1
fi

# The MSI's ProductVersion must be numeric (a.b.c, c < 65536) and grow
# with each build so that MajorUpgrade replaces the installed one: a tag
# vA.B.C gives A.B.C; otherwise 0.0.<number of commits>.
if [[ $VERSION =~ ^v?([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
  msiversion=${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}
else
  msiversion=0.0.$(git rev-list --count HEAD 2>/dev/null || echo 0)
fi
msi=$MSIDIR/csctoken-$VERSION-x64.msi

mkdir -p "$OUT" "$MSIDIR"
work=$(mktemp -d /tmp/csctoken-windows.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

t0=$(date +%s)
echo "== csctoken.dll (Windows x64, mingw-w64)"
# A c-archive linked by mingw's gcc: Go's own c-shared link (a .def file of
# every //export) would export the goXxx functions too; this way the DLL
# exports what cgo/csctoken.h declares __declspec(dllexport): the C_*
# functions, nothing else.
CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=$CC_WIN \
  CGO_CFLAGS="$(pkg-config --cflags p11-kit-1) -O2 -g" \
  "$GO" build -trimpath -buildmode=c-archive -ldflags "-X main.version=$VERSION" -o "$work/csctoken.a" ./cgo
"$CC_WIN" -shared -o "$OUT/csctoken.dll" \
  -Wl,--whole-archive "$work/csctoken.a" -Wl,--no-whole-archive \
  -Wl,--tsaware -Wl,--nxcompat -Wl,--dynamicbase -Wl,--high-entropy-va -Wl,--no-insert-timestamp -s

echo "== csctoken.exe"
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 \
  "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$OUT/csctoken.exe" ./cmd/csctoken
t1=$(date +%s)

# ---- the signing key ------------------------------------------------------
if [ -n "${CSCTOKEN_SIGN_CONFIG:-}" ]; then
  : "${CSCTOKEN_SIGN_KEY:?CSCTOKEN_SIGN_KEY: the pkcs11: URI of the code-signing key}"
  : "${CSCTOKEN_SIGN_PIN_FILE:?CSCTOKEN_SIGN_PIN_FILE: a file with the credential PIN}"
  export CSCTOKEN_CONFIG=$CSCTOKEN_SIGN_CONFIG
  key=$CSCTOKEN_SIGN_KEY
  pinfile=$CSCTOKEN_SIGN_PIN_FILE
  chain=${CSCTOKEN_SIGN_CHAIN:-}
  echo "== signing with $key of the service in $CSCTOKEN_SIGN_CONFIG"
else
  echo "== no CSCTOKEN_SIGN_CONFIG: signing with a throwaway test rssp (not trusted by Windows)"
  port=
  for p in $(seq 18643 18743); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
  done
  [ -n "$port" ] || { echo "no free port in 18643-18743" >&2; exit 1; }
  "$RSSP" init --dir "$work/rssp" --listen "127.0.0.1:$port" >/dev/null
  "$RSSP" serve --config "$work/rssp/rssp.toml" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
  admin=("$RSSP" admin --config "$work/rssp/rssp.toml")
  password="code signing $$ $RANDOM"
  pinfile=$work/pin
  (umask 077 && od -An -tu8 -N8 /dev/urandom | tr -d " " >"$pinfile") # digits
  echo "$password" | "${admin[@]}" user add release --password-stdin >/dev/null
  "${admin[@]}" credential add --user release --key rsa-3072 --pin-stdin --multisign 10 \
    --description "csctoken code signing" <"$pinfile" >/dev/null
  export XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache HOME=$work/home
  unset DBUS_SESSION_BUS_ADDRESS
  export CSCTOKEN_CONFIG=$work/csctoken.toml
  cat >"$CSCTOKEN_CONFIG" <<TOML
[[service]]
name = "csctoken release signing"
url = "https://127.0.0.1:$port/csc/v2"
auth = "basic"
username = "release"
ca_file = "$work/rssp/tls-ca.pem"
TOML
  echo "$password" | "$CSCTOKEN" login --password-stdin >/dev/null
  key="pkcs11:token=csctoken%20release%20signing;object=csctoken%20code%20signing"
  chain=$work/rssp/ca-issuing.pem
  cp "$work/rssp/ca-root.pem" "$OUT/test-signing-root.pem"
fi

sign() { # file
  local args=(-pkcs11engine "$ENGINE" -pkcs11module "$LIBCSCTOKEN"
    -pkcs11cert "$key;type=cert" -key "$key;type=private" -readpass "$pinfile"
    -h sha256 -n "csctoken")
  [ -n "$chain" ] && args+=(-ac "$chain")
  [ -n "${CSCTOKEN_SIGN_TIMESTAMP:-}" ] && args+=(-ts "$CSCTOKEN_SIGN_TIMESTAMP")
  rm -f "$1.signed"
  if ! osslsigncode sign "${args[@]}" -in "$1" -out "$1.signed" >"$work/sign.log" 2>&1; then
    cat "$work/sign.log" >&2
    echo "osslsigncode sign $1 failed" >&2
    exit 1
  fi
  mv "$1.signed" "$1"
  echo "   signed $1"
}

echo "== Authenticode through $LIBCSCTOKEN"
sign "$OUT/csctoken.dll"
sign "$OUT/csctoken.exe"
t2=$(date +%s)

echo "== $msi"
# wixl resolves Source= paths relative to its working directory only.
case $msi in /*) ;; *) msi=$root/$msi ;; esac
(cd "$OUT" && wixl -a x64 -D Version="$msiversion" -D SourceDir=. -o "$msi" "$root/installer/windows/csctoken.wxs")
sign "$msi"
t3=$(date +%s)
echo "== done: build $((t1 - t0)) s, signing $((t2 - t1)) s, MSI $((t3 - t2)) s (ProductVersion $msiversion)"

#!/bin/bash
# Build, sign, package and notarize csctoken for macOS — run on a Mac.
#
# NOT RUN: csctoken is built and tested on Linux; this script has never been
# executed (see installer/README.md, "macOS"). It is the procedure a Mac
# build would follow, written down so that it can be.
#
# Needs: macOS with Xcode's command line tools (clang, lipo, install_name_tool,
# codesign, pkgbuild, productbuild, productsign, xcrun notarytool), Go (the
# version in go.mod), a "Developer ID Application" and a "Developer ID
# Installer" identity in the keychain, and a notarytool keychain profile:
#     xcrun notarytool store-credentials csctoken-notary --apple-id … --team-id …
#
# Usage: installer/macos/build.sh VERSION
#   APP_ID="Developer ID Application: ACME (TEAMID)"
#   INSTALLER_ID="Developer ID Installer: ACME (TEAMID)"
#   NOTARY_PROFILE=csctoken-notary
set -euo pipefail

VERSION=${1:?usage: build.sh VERSION}
APP_ID=${APP_ID:?set APP_ID to the Developer ID Application identity}
INSTALLER_ID=${INSTALLER_ID:?set INSTALLER_ID to the Developer ID Installer identity}
NOTARY_PROFILE=${NOTARY_PROFILE:-csctoken-notary}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/macos
LIBDIR=/usr/local/lib/csctoken          # where the package installs the module
rm -rf "$OUT" && mkdir -p "$OUT/arm64" "$OUT/amd64" "$OUT/root$LIBDIR" "$OUT/root/usr/local/bin"
cd "$ROOT"

export CGO_ENABLED=1 MACOSX_DEPLOYMENT_TARGET=11.0
LDFLAGS="-s -w -X main.version=$VERSION"

# 1. The module, once per architecture (cgo cross-builds with clang's -arch),
#    then one universal library. The install name is the installed path, so a
#    program that links it (rather than dlopens a path) finds it.
for arch in arm64 amd64; do
	carch=$arch; [ "$arch" = amd64 ] && carch=x86_64
	GOOS=darwin GOARCH=$arch CC="clang -arch $carch" \
		go build -trimpath -buildmode=c-shared -ldflags "$LDFLAGS -extldflags=-Wl,-install_name,$LIBDIR/libcsctoken.dylib" \
		-o "$OUT/$arch/libcsctoken.dylib" ./cgo
	GOOS=darwin GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/$arch/csctoken" ./cmd/csctoken
done
lipo -create -output "$OUT/root$LIBDIR/libcsctoken.dylib" "$OUT/arm64/libcsctoken.dylib" "$OUT/amd64/libcsctoken.dylib"
lipo -create -output "$OUT/root/usr/local/bin/csctoken" "$OUT/arm64/csctoken" "$OUT/amd64/csctoken"
install_name_tool -id "$LIBDIR/libcsctoken.dylib" "$OUT/root$LIBDIR/libcsctoken.dylib"
lipo -info "$OUT/root$LIBDIR/libcsctoken.dylib"     # expect: x86_64 arm64
otool -D "$OUT/root$LIBDIR/libcsctoken.dylib"       # expect: the install name above

# 2. Sign the code (hardened runtime, secure timestamp: notarization needs both).
codesign --force --options runtime --timestamp --sign "$APP_ID" "$OUT/root$LIBDIR/libcsctoken.dylib"
codesign --force --options runtime --timestamp --sign "$APP_ID" "$OUT/root/usr/local/bin/csctoken"
codesign --verify --strict --verbose=2 "$OUT/root$LIBDIR/libcsctoken.dylib" "$OUT/root/usr/local/bin/csctoken"

# 3. The package: a component package of the file tree, a product archive
#    around it, signed with the installer identity.
pkgbuild --root "$OUT/root" --identifier org.csctoken.pkg --version "$VERSION" \
	--install-location / "$OUT/csctoken-component.pkg"
productbuild --package "$OUT/csctoken-component.pkg" --identifier org.csctoken --version "$VERSION" \
	"$OUT/csctoken-unsigned.pkg"
productsign --sign "$INSTALLER_ID" --timestamp "$OUT/csctoken-unsigned.pkg" "$OUT/csctoken-$VERSION.pkg"
pkgutil --check-signature "$OUT/csctoken-$VERSION.pkg"

# 4. Notarize, wait for Apple's verdict, and staple the ticket so that
#    Gatekeeper accepts the package offline.
xcrun notarytool submit "$OUT/csctoken-$VERSION.pkg" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$OUT/csctoken-$VERSION.pkg"
spctl --assess --type install --verbose "$OUT/csctoken-$VERSION.pkg"

echo "built $OUT/csctoken-$VERSION.pkg"
echo "Firefox: deploy csctoken-firefox.mobileconfig through your MDM (SecurityDevices → $LIBDIR/libcsctoken.dylib)"

// Package packages installs the Linux packages that `make packages` built
// (build/dist) on this machine, as root, and checks them with the real
// programs: dpkg, p11-kit, pkcs11-tool through p11-kit-proxy.so, openssl,
// lintian, systemd-analyze, rpm.
//
// The tests change the system (packages, /etc/firefox/policies, a system
// user), so they run only under `make package-test` (part of make test),
// which sets CSCTOKEN_PACKAGE_TESTS=1 after building the packages; a plain
// `go test ./...` skips them. Every test purges what it installed and puts
// back the files it touched, also when it fails. Without root or a tool
// they skip, or fail under CSCTOKEN_REQUIRE_PACKAGES=1 (CI).
package packages

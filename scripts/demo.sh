#!/usr/bin/env bash
# make demo: the main job end to end on embedded defaults.
#   1. build rssp; 2. rssp init + serve on 127.0.0.1 with TLS, software keystore;
#   3. enrol a demo user with an RSA-2048 and an EC P-256 credential;
#   4. log in, list, authorize with the PIN and sign hashes over the CSC API;
#   5. verify every signature with openssl against the certificate the API returned;
#   6. time-stamp, check the audit chain, stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages it uses: installed as root (after any other apt or
# dpkg running now), named otherwise.
bash scripts/deps.sh build
command -v go >/dev/null || { echo "Go is needed (go.mod names the version)" >&2; exit 1; }

echo "== building build/libcsctoken.so, build/rssp, build/csctoken"
echo "   (the first build compiles about 300 Go packages: a few minutes; progress below)"
# go build -v names each package as it compiles it: one progress line per 25.
GOFLAGS="${GOFLAGS:+$GOFLAGS }-v" make -s build 2>&1 | awk '
  /^(go|make|#)/ || /\.go:[0-9]|error|cannot/ { print "   " $0; next }
  { n++; last = $0; if (n % 25 == 0) { printf "   compiled %d packages (now %s)\n", n, last; fflush() } }
  END { if (n) printf "   compiled %d packages\n", n }'
[ "${PIPESTATUS[0]}" = 0 ] || { echo "the build failed" >&2; exit 1; }
RSSP=$PWD/build/rssp

work=$(mktemp -d /tmp/csctoken-demo.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=
for p in $(seq 18443 18543); do
  if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port in 18443-18543" >&2; exit 1; }

echo "== rssp init --dir $work/rssp --listen 127.0.0.1:$port"
"$RSSP" init --dir "$work/rssp" --listen "127.0.0.1:$port" | sed 's/^/   /'
"$RSSP" serve --config "$work/rssp/rssp.toml" 2>"$work/server.log" &
server_pid=$!
base=https://127.0.0.1:$port/csc/v2
CURL=(curl -sS --cacert "$work/rssp/tls-ca.pem" --max-time 30)
for _ in $(seq 1 100); do
  "${CURL[@]}" -o /dev/null "$base/info" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
echo "== serving $base ($("${CURL[@]}" "$base/info" | jq -r '.name + ", CSC " + .specs'))"

admin=("$RSSP" admin --config "$work/rssp/rssp.toml")
password="demo password $$"
pin=123456
echo "$password" | "${admin[@]}" user add demo --password-stdin >/dev/null
rsa_id=$(echo "$pin" | "${admin[@]}" credential add --user demo --key rsa-2048 --pin-stdin --multisign 5 --description "Demo RSA-2048")
ec_id=$(echo "$pin" | "${admin[@]}" credential add --user demo --key ec-p256 --pin-stdin --scal 2 --description "Demo EC P-256 (SCAL2)")
echo "== enrolled user 'demo': RSA-2048 credential $rsa_id (SCAL1, multisign 5), EC P-256 credential $ec_id (SCAL2)"

post() { # method token json
  "${CURL[@]}" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d "$3" "$base/$1"
}
token=$("${CURL[@]}" -u "demo:$password" -H 'Content-Type: application/json' -d '{}' "$base/auth/login" | jq -r .access_token)
[ -n "$token" ] && [ "$token" != null ] || { echo "login failed" >&2; exit 1; }
echo "== logged in (auth/login, HTTP Basic)"
post credentials/list "$token" '{"credentialInfo":true,"certInfo":true}' |
  jq -r '.credentialInfos[] | "   \(.credentialID)  \(.description)  key \(.key.len) bits  SCAL \(.SCAL)  \(.cert.subjectDN)  until \(.cert.validTo)"'

printf 'a contract to sign\n' >"$work/doc.txt"
hash_b64=$(openssl dgst -sha256 -binary "$work/doc.txt" | base64 -w0)
verify() { # id algo-label openssl-args...
  local id=$1 label=$2; shift 2
  post credentials/info "$token" "{\"credentialID\":\"$id\"}" | jq -r '.cert.certificates[0]' |
    { echo "-----BEGIN CERTIFICATE-----"; fold -w64; echo "-----END CERTIFICATE-----"; } >"$work/$id.pem"
  openssl x509 -in "$work/$id.pem" -pubkey -noout >"$work/$id.pub"
  if openssl dgst -sha256 -verify "$work/$id.pub" -signature "$work/sig.bin" "$@" "$work/doc.txt" >/dev/null; then
    echo "   $label: signature verified by openssl with the credential's certificate"
  else
    echo "   $label: signature DOES NOT VERIFY" >&2; exit 1
  fi
}

echo "== RSA-2048: credentials/authorize with the PIN (SAD for 2 signatures), then signHash twice"
sad=$(post credentials/authorize "$token" "{\"credentialID\":\"$rsa_id\",\"numSignatures\":2,\"authData\":[{\"id\":\"PIN\",\"value\":\"$pin\"}]}" | jq -r .SAD)
post signatures/signHash "$token" "{\"credentialID\":\"$rsa_id\",\"SAD\":\"$sad\",\"hashes\":[\"$hash_b64\"],\"signAlgo\":\"1.2.840.113549.1.1.11\"}" |
  jq -r '.signatures[0]' | base64 -d >"$work/sig.bin"
verify "$rsa_id" "RSA PKCS#1 v1.5 (sha256WithRSAEncryption)"
post signatures/signHash "$token" "{\"credentialID\":\"$rsa_id\",\"SAD\":\"$sad\",\"hashes\":[\"$hash_b64\"],\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\",\"signAlgo\":\"1.2.840.113549.1.1.10\"}" |
  jq -r '.signatures[0]' | base64 -d >"$work/sig.bin"
verify "$rsa_id" "RSASSA-PSS (SHA-256, salt 32)" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32

echo "== EC P-256, SCAL2: the SAD is bound to this document's hash"
sad=$(post credentials/authorize "$token" "{\"credentialID\":\"$ec_id\",\"numSignatures\":1,\"hashes\":[\"$hash_b64\"],\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\",\"authData\":[{\"id\":\"PIN\",\"value\":\"$pin\"}]}" | jq -r .SAD)
other=$(printf other | openssl dgst -sha256 -binary | base64 -w0)
refused=$(post signatures/signHash "$token" "{\"credentialID\":\"$ec_id\",\"SAD\":\"$sad\",\"hashes\":[\"$other\"],\"signAlgo\":\"1.2.840.10045.4.3.2\"}" | jq -r .error_description)
echo "   another hash with that SAD is refused: $refused"
post signatures/signHash "$token" "{\"credentialID\":\"$ec_id\",\"SAD\":\"$sad\",\"hashes\":[\"$hash_b64\"],\"signAlgo\":\"1.2.840.10045.4.3.2\"}" |
  jq -r '.signatures[0]' | base64 -d >"$work/sig.bin"
verify "$ec_id" "ECDSA P-256 with SHA-256"

echo "== wrong PIN"
post credentials/authorize "$token" "{\"credentialID\":\"$rsa_id\",\"numSignatures\":1,\"authData\":[{\"id\":\"PIN\",\"value\":\"000000\"}]}" |
  jq -r '"   \(.error): \(.error_description)"'

echo "== RFC 3161 time-stamp of the document"
post signatures/timestamp "$token" "{\"hash\":\"$hash_b64\",\"hashAlgo\":\"2.16.840.1.101.3.4.2.1\"}" | jq -r .timestamp | base64 -d >"$work/ts.der"
openssl ts -verify -token_in -in "$work/ts.der" -data "$work/doc.txt" -CAfile "$work/rssp/ca-root.pem" -untrusted "$work/rssp/tsa-cert.pem" 2>/dev/null | sed 's/^/   openssl ts -verify: /'

echo "== the PKCS#11 module: libcsctoken.so seen by pkcs11-tool"
export XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache
export CSCTOKEN_CONFIG=$work/csctoken.toml
cat >"$CSCTOKEN_CONFIG" <<TOML
# The module's configuration: one [[service]] per remote signing service.
[[service]]
name = "csctoken demo"
url = "$base"
auth = "basic"
username = "demo"
credential_auth = "pin"
ca_file = "$work/rssp/tls-ca.pem"
TOML
echo "$password" | build/csctoken login --password-stdin | sed 's/^/   /'
build/csctoken list | sed 's/^/   /'
P11=(pkcs11-tool --module "$PWD/build/libcsctoken.so")
"${P11[@]}" --list-slots 2>/dev/null | sed 's/^/   /'
"${P11[@]}" --list-objects --type cert 2>/dev/null | grep -E 'Certificate Object|label|subject|ID:' | sed 's/^/   /'
p11sign() { # hex-id mechanism out [extra args]
  local id=$1 mech=$2 out=$3; shift 3
  "${P11[@]}" --login --pin "$pin" --sign --id "$id" --mechanism "$mech" --input-file "$work/doc.txt" --output-file "$out" "$@" >/dev/null 2>"$work/p11.err" ||
    { cat "$work/p11.err" >&2; exit 1; }
}
p11verify() { # hex-id label sig openssl-args...
  local id=$1 label=$2 sig=$3; shift 3
  "${P11[@]}" --read-object --type cert --id "$id" --output-file "$work/p11cert.der" >/dev/null 2>&1
  openssl x509 -inform DER -in "$work/p11cert.der" -pubkey -noout >"$work/p11.pub"
  if openssl dgst -sha256 -verify "$work/p11.pub" -signature "$sig" "$@" "$work/doc.txt" >/dev/null; then
    echo "   $label: signed through libcsctoken.so, verified by openssl with the token's certificate"
  else
    echo "   $label: signature DOES NOT VERIFY" >&2; exit 1
  fi
}
rsa_hex=$("${P11[@]}" --list-objects --type privkey --login --pin "$pin" 2>/dev/null | awk '/RSA/ {f=1} f && /ID:/ {print $2; exit}')
ec_hex=$("${P11[@]}" --list-objects --type privkey --login --pin "$pin" 2>/dev/null | awk '/EC/ {f=1} f && /ID:/ {print $2; exit}')
[ -n "$rsa_hex" ] && [ -n "$ec_hex" ] || { echo "the token shows no RSA and EC keys" >&2; exit 1; }
p11sign "$rsa_hex" SHA256-RSA-PKCS "$work/p11-rsa.sig"
p11verify "$rsa_hex" "RSA PKCS#1 v1.5 (CKM_SHA256_RSA_PKCS)" "$work/p11-rsa.sig"
p11sign "$rsa_hex" SHA256-RSA-PKCS-PSS "$work/p11-pss.sig" --mgf MGF1-SHA256 --salt-len 32
p11verify "$rsa_hex" "RSA-PSS (CKM_SHA256_RSA_PKCS_PSS)" "$work/p11-pss.sig" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32
p11sign "$ec_hex" ECDSA-SHA256 "$work/p11-ec.sig" --signature-format openssl
p11verify "$ec_hex" "ECDSA P-256 (CKM_ECDSA_SHA256, SCAL2: authorized for this hash)" "$work/p11-ec.sig"

echo "== audit log"
"${admin[@]}" audit verify | sed 's/^/   /'

kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
echo "== server stopped; requests it logged: $(grep -c 'msg=request' "$work/server.log")"
cat <<EOF2

Use the token from your programs (with a config like $CSCTOKEN_CONFIG in
~/.config/csctoken/csctoken.toml, after 'csctoken login'):
  Firefox / Thunderbird: build/csctoken register --firefox --thunderbird (every profile; restart them),
      or Settings → Privacy & Security → Security Devices → Load, $PWD/build/libcsctoken.so
  LibreOffice: Tools → Options → Security → Certificate Path: that Firefox profile (or an NSS
      database made with build/csctoken register --nss sql:DIR), then File → Digital Signatures
      → Sign Document; it asks for the credential PIN. Headless or scripted LibreOffice cannot
      ask: set credential_auth = "browser" and approve each signature on the consent page.
  Java: build/csctoken register --java FILE, then keytool/jarsigner -providerArg FILE;
  GnuTLS and p11-kit programs: build/csctoken register --p11-kit; tests/README.md has each program
  pkcs11-tool --module $PWD/build/libcsctoken.so --list-objects

Next: README.md, "From nothing to a verified signature", sets up your own server and
token step by step (the same as this demo, with your names); docs/configuration.md
has every setting; build/csctoken --help and build/rssp --help every command.
demo OK
EOF2

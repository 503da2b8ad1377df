package objects

import (
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// The listing cache: per service and user, the public data of the last
// successful listing, in cacheDir/<token serial>.cache. C_Initialize loads
// it, so the format is built to load fast with many credentials (a
// thousand in the benchmarks): binary, length-prefixed, each distinct
// certificate stored once (the CA certificates of a service's chains are
// shared by all its credentials), checked by a CRC-32, decoded without
// copying the certificates. Objects are then built from it without
// x509.ParseCertificate (see parseCertFields): only credentials that passed
// it when listed are cached.
//
// Layout (big-endian; "bytes" is a uint32 length, then the bytes):
//
//	magic "csctoken-cache\n\x00"  16 bytes
//	version                        uint16 (cacheVersion)
//	crc                            uint32, CRC-32 (IEEE) of the body
//	body:
//	  url, user                    bytes
//	  listed                       int64, Unix nanoseconds
//	  certificates                 uint32 count, then bytes each (DER)
//	  credentials                  uint32 count, then each:
//	    id, description            bytes
//	    enabled                    uint8
//	    key algos                  uint32 count, then bytes each
//	    key len                    uint32
//	    curve                      bytes
//	    scal, auth                 uint8 each
//	    multisign                  uint32
//	    pin label, pin id          bytes
//	    chain                      uint32 count, then a uint32 index into
//	                               the certificates each
//
// Another magic or version, a bad CRC, a truncated or otherwise malformed
// file: the cache is ignored, with a log line, and the next listing
// rewrites it. The version changes with the layout.
const (
	CacheMagic   = "csctoken-cache\n\x00"
	cacheVersion = 2
	CacheExt     = ".cache"
)

// CacheData is the content of a cache file.
type CacheData struct {
	URL, User string
	Listed    time.Time
	Creds     []Credential
}

func addBytes(b *cryptobyte.Builder, v []byte) {
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
}

func addString(b *cryptobyte.Builder, v string) {
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
}

func addUint8(b *cryptobyte.Builder, v int) error {
	if v < 0 || v > 0xff {
		return fmt.Errorf("value %d out of range", v)
	}
	b.AddUint8(uint8(v))
	return nil
}

func addUint32(b *cryptobyte.Builder, v int) error {
	if v < 0 || int64(v) > 0xffffffff {
		return fmt.Errorf("value %d out of range", v)
	}
	b.AddUint32(uint32(v))
	return nil
}

// EncodeCache writes the cache file's bytes.
func EncodeCache(d CacheData) ([]byte, error) {
	certIndex := map[string]int{}
	var certs [][]byte
	for _, c := range d.Creds {
		for _, der := range c.Certificates {
			if _, ok := certIndex[string(der)]; !ok {
				certIndex[string(der)] = len(certs)
				certs = append(certs, der)
			}
		}
	}
	var body cryptobyte.Builder
	addString(&body, d.URL)
	addString(&body, d.User)
	body.AddUint64(uint64(d.Listed.UnixNano()))
	var err error
	must := func(e error) {
		if err == nil {
			err = e
		}
	}
	must(addUint32(&body, len(certs)))
	for _, der := range certs {
		addBytes(&body, der)
	}
	must(addUint32(&body, len(d.Creds)))
	for _, c := range d.Creds {
		addString(&body, c.ID)
		addString(&body, c.Description)
		enabled := 0
		if c.Enabled {
			enabled = 1
		}
		must(addUint8(&body, enabled))
		must(addUint32(&body, len(c.KeyAlgos)))
		for _, a := range c.KeyAlgos {
			addString(&body, a)
		}
		must(addUint32(&body, c.KeyLen))
		addString(&body, c.CurveOID)
		must(addUint8(&body, c.SCAL))
		must(addUint8(&body, int(c.Auth)))
		must(addUint32(&body, c.Multisign))
		addString(&body, c.PINLabel)
		addString(&body, c.PINID)
		must(addUint32(&body, len(c.Certificates)))
		for _, der := range c.Certificates {
			must(addUint32(&body, certIndex[string(der)]))
		}
	}
	raw, berr := body.Bytes()
	if err == nil {
		err = berr
	}
	if err != nil {
		return nil, fmt.Errorf("encode cache: %w", err)
	}
	var out cryptobyte.Builder
	out.AddBytes([]byte(CacheMagic))
	out.AddUint16(cacheVersion)
	out.AddUint32(crc32.ChecksumIEEE(raw))
	out.AddBytes(raw)
	return out.Bytes()
}

var errCacheFormat = errors.New("malformed cache file")

// readBytes reads a uint32 length and that many bytes (aliased).
func readBytes(s *cryptobyte.String, out *[]byte) bool {
	var n uint32
	return s.ReadUint32(&n) && uint64(n) <= uint64(len(*s)) && s.ReadBytes(out, int(n))
}

// DecodeCache reads a cache file. The credentials' certificates alias
// data.
func DecodeCache(data []byte) (CacheData, error) {
	var d CacheData
	s := cryptobyte.String(data)
	var magic []byte
	var version uint16
	var crc uint32
	if !s.ReadBytes(&magic, len(CacheMagic)) || string(magic) != CacheMagic {
		return d, errors.New("not a cache file of this module")
	}
	if !s.ReadUint16(&version) || version != cacheVersion {
		return d, fmt.Errorf("cache format version %d, this module reads %d", version, cacheVersion)
	}
	if !s.ReadUint32(&crc) || crc32.ChecksumIEEE(s) != crc {
		return d, errors.New("cache file corrupt (checksum)")
	}
	str := func(v *string) bool {
		var b []byte
		if !readBytes(&s, &b) {
			return false
		}
		*v = string(b)
		return true
	}
	// istr reads strings that credentials share (algorithms, curve, PIN
	// label and ID): one copy each.
	intern := map[string]string{}
	istr := func(v *string) bool {
		var b []byte
		if !readBytes(&s, &b) {
			return false
		}
		if x, ok := intern[string(b)]; ok {
			*v = x
			return true
		}
		*v = string(b)
		intern[*v] = *v
		return true
	}
	// count reads a count of items of at least min bytes each.
	count := func(n *int, min int) bool {
		var v uint32
		if !s.ReadUint32(&v) || int64(v)*int64(min) > int64(len(s)) {
			return false
		}
		*n = int(v)
		return true
	}
	var listed uint64
	var ncerts, ncreds int
	if !str(&d.URL) || !str(&d.User) || !s.ReadUint64(&listed) || !count(&ncerts, 4) {
		return d, errCacheFormat
	}
	d.Listed = time.Unix(0, int64(listed))
	certs := make([][]byte, ncerts)
	for i := range certs {
		if !readBytes(&s, &certs[i]) {
			return d, errCacheFormat
		}
	}
	if !count(&ncreds, 39) { // the fixed-size part of a credential
		return d, errCacheFormat
	}
	d.Creds = make([]Credential, ncreds)
	for i := range d.Creds {
		c := &d.Creds[i]
		var enabled, scal, auth uint8
		var keyLen, multisign uint32
		var nalgos, nchain int
		if !str(&c.ID) || !str(&c.Description) || !s.ReadUint8(&enabled) || !count(&nalgos, 4) {
			return d, errCacheFormat
		}
		c.Enabled = enabled == 1
		if nalgos > 0 {
			c.KeyAlgos = make([]string, nalgos)
		}
		for j := range c.KeyAlgos {
			if !istr(&c.KeyAlgos[j]) {
				return d, errCacheFormat
			}
		}
		if !s.ReadUint32(&keyLen) || !istr(&c.CurveOID) || !s.ReadUint8(&scal) || !s.ReadUint8(&auth) ||
			!s.ReadUint32(&multisign) || !istr(&c.PINLabel) || !istr(&c.PINID) || !count(&nchain, 4) {
			return d, errCacheFormat
		}
		c.KeyLen, c.SCAL, c.Auth, c.Multisign = int(keyLen), int(scal), AuthMode(auth), int(multisign)
		if c.Auth > AuthBrowser || c.Multisign > 1<<30 || c.KeyLen > 1<<20 {
			return d, errCacheFormat
		}
		c.Certificates = make([][]byte, nchain)
		for j := range c.Certificates {
			var k uint32
			if !s.ReadUint32(&k) || int(k) >= len(certs) {
				return d, errCacheFormat
			}
			c.Certificates[j] = certs[k]
		}
	}
	if !s.Empty() {
		return d, errCacheFormat
	}
	return d, nil
}

package cscclient

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for the response decoders. Run one with, e.g.,
//
//	go test -run '^$' -fuzz FuzzDecodeCredentialInfo -fuzztime 30s ./cscclient/

func jsonResult(status int, body []byte) *result {
	return &result{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: body}
}

// checkErr fails on an error that is not an *Error.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *Error: %v", err, err)
	}
	_ = e.Error()
	if len(e.Body) > maxExcerpt+len("…") || !utf8.ValidString(e.Body) {
		t.Fatalf("bad excerpt %q", e.Body)
	}
}

func FuzzDecodeInfo(f *testing.F) {
	f.Add([]byte(`{"specs":"2.0.0.2","name":"x","logo":"","region":"IT","lang":"en","description":"d","authType":["tls","oauth2code"],"oauth2":"https://as","methods":["info"],"signAlgorithms":{"algos":["1.2.840.113549.1.1.11"],"algoParams":["BQA="]},"signature_formats":{"formats":["P"],"envelope_properties":[["Certification"]]},"conformance_levels":["Ades-B-B"]}`), false)
	f.Add([]byte(`{"specs":"1.0.4.0","authType":["basic"],"methods":["credentials/sendOTP"]}`), true)
	f.Add([]byte(`{"error":"server_error"}`), false)
	f.Add([]byte(`[]`), true)
	f.Fuzz(func(t *testing.T, body []byte, v1 bool) {
		v := V2
		if v1 {
			v = V1
		}
		res := jsonResult(200, body)
		if e := checkResult(mInfo, res); e != nil {
			checkErr(t, e)
			return
		}
		_, err := decodeInfo(v, res)
		checkErr(t, err)
	})
}

func FuzzDecodeCredentialInfo(f *testing.F) {
	f.Add([]byte(`{"description":"d","key":{"status":"enabled","algo":["1.2.840.10045.2.1"],"len":256,"curve":"1.2.840.10045.3.1.7"},"cert":{"status":"valid","certificates":["MIIB","-_8"],"issuerDN":"CN=x","serialNumber":"01","subjectDN":"CN=y","validFrom":"20240101000000Z","validTo":"20250101000000Z"},"auth":{"mode":"explicit","expression":"PIN AND OTP","objects":[{"type":"Password","id":"PIN","format":"N"},{"type":"ChallengeResponse","id":"OTP","generator":"totp"}]},"SCAL":2,"multisign":5,"lang":"en"}`), false)
	f.Add([]byte(`{"key":{"status":"enabled","algo":["1.2.840.113549.1.1.1"],"len":2048},"authMode":"explicit","PIN":{"presence":true,"format":"N"},"OTP":{"presence":"optional","type":"online","ID":"x","provider":"sms"},"SCAL":"1","multisign":1}`), true)
	f.Add([]byte(`{"key":{},"authMode":"implicit","multisign":1}`), true)
	f.Add([]byte(`{"SCAL":null,"auth":null}`), false)
	f.Fuzz(func(t *testing.T, body []byte, v1 bool) {
		v := V2
		if v1 {
			v = V1
		}
		res := jsonResult(200, body)
		if e := checkResult(mCredInfo, res); e != nil {
			checkErr(t, e)
			return
		}
		ci, err := decodeCredInfo(v, res)
		checkErr(t, err)
		if err == nil {
			// The translation back to v1 must not panic either.
			_ = ci.V1()
		}
		// credentials/list embeds the same object.
		lres := jsonResult(200, append(append([]byte(`{"credentialIDs":["a"],"credentialInfos":[`), body...), "]}"...))
		_, err = decodeList(lres)
		checkErr(t, err)
	})
}

func FuzzDecodeSignHash(f *testing.F) {
	f.Add([]byte(`{"signatures":["+/+/"]}`), uint8(1), false)
	f.Add([]byte(`{"signatures":["MEUCIQD8FbDkM3sI1KhxMnL8KhDQ5i5D0P7hcbS5ZM3P6mX4jwIgD4zv9F8Bzq0C7XqP9QsQdw3t2a1Ev0oR2x0tOK8Ks3E="]}`), uint8(1), true)
	f.Add([]byte(`{"responseID":"r"}`), uint8(0), false)
	f.Add([]byte(`{"signatures":[null,""]}`), uint8(2), true)
	f.Fuzz(func(t *testing.T, body []byte, n uint8, ec bool) {
		algo := "1.2.840.113549.1.1.11"
		if ec {
			algo = "1.2.840.10045.4.3.2"
		}
		res := jsonResult(200, body)
		if e := checkResult(mSignHash, res); e != nil {
			checkErr(t, e)
			return
		}
		out, err := decodeSignHash(mSignHash, res, int(n), algo, n == 0)
		checkErr(t, err)
		if err == nil && ec {
			for _, s := range out.Signatures {
				if _, _, ok := parseECDSADER(s); !ok {
					t.Fatalf("ECDSA signature not normalised to DER: %x", s)
				}
			}
		}
	})
}

func FuzzErrorBody(f *testing.F) {
	f.Add(400, []byte(`{"error":"invalid_request","error_description":"Invalid PIN"}`), "")
	f.Add(429, []byte(``), "5")
	f.Add(503, []byte(`<html>down</html>`), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(200, []byte(`{"error":"access_denied"}`), "")
	f.Add(401, []byte(`{"error":{"code":1}}`), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		res := &result{status: status, header: http.Header{"Retry-After": {retryAfter}}, body: body}
		e := checkResult(mList, res)
		if e == nil {
			if status < 200 || status >= 300 {
				t.Fatalf("status %d accepted", status)
			}
			return
		}
		checkErr(t, e)
		for _, k := range []error{ErrWrongPIN, ErrCredentialLocked, ErrInvalidToken, ErrServer} {
			_ = errors.Is(e, k)
		}
		if e.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %v", e.RetryAfter)
		}
	})
}

func FuzzECDSA(f *testing.F) {
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, uint8(32))
	f.Add(bytes.Repeat([]byte{1}, 64), uint8(32))
	f.Add(bytes.Repeat([]byte{0xff}, 132), uint8(66))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, sig []byte, size uint8) {
		der, err := ECDSAToDER(sig)
		if err == nil {
			if _, _, ok := parseECDSADER(der); !ok {
				t.Fatalf("ECDSAToDER produced invalid DER %x", der)
			}
			again, err := ECDSAToDER(der)
			if err != nil || !bytes.Equal(again, der) {
				t.Fatalf("ECDSAToDER not idempotent: %x → %x (%v)", der, again, err)
			}
		}
		raw, err := ECDSAToRaw(sig, int(size))
		if err != nil {
			return
		}
		if len(raw) != 2*int(size) {
			t.Fatalf("raw of %d bytes for size %d", len(raw), size)
		}
		if _, _, ok := parseECDSADER(raw); ok {
			// r‖s whose bytes are also a strict DER Ecdsa-Sig-Value is read
			// as DER, by design: for P-256 a DER signature of exactly 64
			// bytes comes about once in ~2^16 signatures, r‖s that parses as
			// DER about once in 2^40 (testdata/fuzz/FuzzECDSA/raw-that-is-der).
			return
		}
		der2, err := ECDSAToDER(raw)
		if err != nil {
			// r‖s of an unusual size is only read as raw when the size is known.
			return
		}
		raw2, err := ECDSAToRaw(der2, int(size))
		if err != nil || !bytes.Equal(raw, raw2) {
			t.Fatalf("raw → DER → raw: %x → %x (%v)", raw, raw2, err)
		}
	})
}

package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
)

// p11 drives the module in process by its PKCS#11-level API, the one the
// C ABI of libcsctoken.so calls.
type p11 struct {
	m *module.Module
}

// openModule initializes a module on cfg with the adapter; the caller
// finalizes it.
func (c *cli) openModule(cfg *config.Config, cfgErr error) (*p11, error) {
	factory, err := c.factory()
	if err != nil {
		return nil, err
	}
	var log *slog.Logger
	if c.verbose {
		log = c.log
	}
	m := module.New(module.Options{
		LoadConfig:          func() (*config.Config, error) { return cfg, cfgErr },
		NewService:          factory,
		Logger:              log,
		NoBackgroundRefresh: true,
	})
	if err := m.Initialize(module.InitArgs{}); err != nil {
		return nil, fmt.Errorf("C_Initialize: %w", err)
	}
	return &p11{m: m}, nil
}

func (p *p11) close() { _ = p.m.Finalize() }

// slot finds the slot whose token label is name.
func (p *p11) slot(name string) (module.SlotID, error) {
	slots, err := p.m.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, id := range slots {
		ti, err := p.m.GetTokenInfo(id)
		if err != nil {
			return 0, fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if label(ti.Label[:]) == name {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no token labelled %q", name)
}

// label trims a space-padded CK string.
func label(b []byte) string { return strings.TrimRight(string(b), " ") }

func (p *p11) find(h module.SessionHandle, tmpl ...ck.Attribute) ([]module.ObjectHandle, error) {
	if err := p.m.FindObjectsInit(h, tmpl); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	defer func() { _ = p.m.FindObjectsFinal(h) }()
	var all []module.ObjectHandle
	for {
		got, err := p.m.FindObjects(h, 32)
		if err != nil {
			return nil, fmt.Errorf("C_FindObjects: %w", err)
		}
		if len(got) == 0 {
			return all, nil
		}
		all = append(all, got...)
	}
}

// attr reads one attribute (nil when the object has none).
func (p *p11) attr(h module.SessionHandle, o module.ObjectHandle, typ uint) ([]byte, error) {
	q := []module.AttributeRequest{{Type: typ}}
	if err := p.m.GetAttributeValue(h, o, q); err != nil {
		if ck.RV(err) == uint(ck.CKR_ATTRIBUTE_TYPE_INVALID) {
			return nil, nil
		}
		return nil, fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	q[0].Buf = make([]byte, q[0].Len)
	if err := p.m.GetAttributeValue(h, o, q); err != nil {
		return nil, fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	return q[0].Buf[:q[0].Len], nil
}

func classAttr(c uint) ck.Attribute { return ck.Attribute{Type: ck.CKA_CLASS, Value: ck.ULongBytes(c)} }

// mechNames names the mechanisms the module offers.
var mechNames = map[uint]string{
	ck.CKM_RSA_PKCS:            "CKM_RSA_PKCS",
	ck.CKM_SHA1_RSA_PKCS:       "CKM_SHA1_RSA_PKCS",
	ck.CKM_SHA224_RSA_PKCS:     "CKM_SHA224_RSA_PKCS",
	ck.CKM_SHA256_RSA_PKCS:     "CKM_SHA256_RSA_PKCS",
	ck.CKM_SHA384_RSA_PKCS:     "CKM_SHA384_RSA_PKCS",
	ck.CKM_SHA512_RSA_PKCS:     "CKM_SHA512_RSA_PKCS",
	ck.CKM_RSA_PKCS_PSS:        "CKM_RSA_PKCS_PSS",
	ck.CKM_SHA1_RSA_PKCS_PSS:   "CKM_SHA1_RSA_PKCS_PSS",
	ck.CKM_SHA224_RSA_PKCS_PSS: "CKM_SHA224_RSA_PKCS_PSS",
	ck.CKM_SHA256_RSA_PKCS_PSS: "CKM_SHA256_RSA_PKCS_PSS",
	ck.CKM_SHA384_RSA_PKCS_PSS: "CKM_SHA384_RSA_PKCS_PSS",
	ck.CKM_SHA512_RSA_PKCS_PSS: "CKM_SHA512_RSA_PKCS_PSS",
	ck.CKM_ECDSA:               "CKM_ECDSA",
	ck.CKM_ECDSA_SHA1:          "CKM_ECDSA_SHA1",
	ck.CKM_ECDSA_SHA224:        "CKM_ECDSA_SHA224",
	ck.CKM_ECDSA_SHA256:        "CKM_ECDSA_SHA256",
	ck.CKM_ECDSA_SHA384:        "CKM_ECDSA_SHA384",
	ck.CKM_ECDSA_SHA512:        "CKM_ECDSA_SHA512",
	ck.CKM_SHA_1:               "CKM_SHA_1",
	ck.CKM_SHA224:              "CKM_SHA224",
	ck.CKM_SHA256:              "CKM_SHA256",
	ck.CKM_SHA384:              "CKM_SHA384",
	ck.CKM_SHA512:              "CKM_SHA512",
}

func mechName(m uint) string {
	if n, ok := mechNames[m]; ok {
		return n
	}
	return fmt.Sprintf("%#x", m)
}

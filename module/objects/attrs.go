package objects

import (
	"bytes"

	"github.com/csctoken/csctoken/module/ck"
)

// AttributeRequest is one entry of a C_GetAttributeValue template.
//
// In: Type, and Buf: nil when pValue is NULL (a length query), otherwise
// the caller's buffer of *ulValueLen bytes, which the module fills.
// Out: Len is what the C layer stores in ulValueLen: the value's length,
// or ck.UnavailableInformation when the attribute is sensitive, invalid
// for the object, or does not fit in Buf.
type AttributeRequest struct {
	Type uint
	Buf  []byte
	Len  uint
}

// GetAttributes fills the template per PKCS#11 v2.40 §5.7.5 and returns
// the combined code: CKR_OK, or one of CKR_ATTRIBUTE_SENSITIVE,
// CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL (in that priority when
// several apply; the standard allows any of them). Every entry is
// processed whatever happens to the others.
func (o *Object) GetAttributes(tmpl []AttributeRequest) error {
	var sensitive, invalid, small bool
	attrs := o.attributes()
	for i := range tmpl {
		r := &tmpl[i]
		if o.sensitive[r.Type] {
			r.Len = ck.UnavailableInformation
			sensitive = true
			continue
		}
		v, ok := attrs[r.Type]
		switch {
		case !ok:
			r.Len = ck.UnavailableInformation
			invalid = true
		case r.Buf == nil:
			r.Len = uint(len(v))
		case len(r.Buf) >= len(v):
			copy(r.Buf, v)
			r.Len = uint(len(v))
		default:
			r.Len = ck.UnavailableInformation
			small = true
		}
	}
	switch {
	case sensitive:
		return ck.CKR_ATTRIBUTE_SENSITIVE
	case invalid:
		return ck.CKR_ATTRIBUTE_TYPE_INVALID
	case small:
		return ck.CKR_BUFFER_TOO_SMALL
	}
	return nil
}

// Matches reports whether the object has every attribute of the template
// with exactly the same bytes. Sensitive attributes never match; an empty
// template matches everything.
func (o *Object) Matches(tmpl []ck.Attribute) bool {
	for _, a := range tmpl {
		if o.sensitive[a.Type] {
			return false
		}
		v, ok := o.value(a.Type)
		if !ok || !bytes.Equal(v, a.Value) {
			return false
		}
	}
	return true
}

// Size is the C_GetObjectSize answer: the bytes of the non-sensitive values.
func (o *Object) Size() uint {
	n := 0
	for _, v := range o.attributes() {
		n += len(v)
	}
	return uint(n)
}

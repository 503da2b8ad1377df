package module

import (
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// writeOp answers every call that would create or change objects:
// CKR_SESSION_READ_ONLY for a token object in a read-only session, else
// CKR_TOKEN_WRITE_PROTECTED.
func (m *Module) writeOp(op string, h SessionHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish(op, &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	if !s.rw {
		for _, a := range tmpl {
			if a.Type == ck.CKA_TOKEN && len(a.Value) == 1 && a.Value[0] != 0 {
				return ck.CKR_SESSION_READ_ONLY
			}
		}
	}
	return ck.CKR_TOKEN_WRITE_PROTECTED
}

// CreateObject is C_CreateObject.
func (m *Module) CreateObject(h SessionHandle, tmpl []ck.Attribute) (ObjectHandle, error) {
	return 0, m.writeOp("CreateObject", h, tmpl)
}

// CopyObject is C_CopyObject.
func (m *Module) CopyObject(h SessionHandle, obj ObjectHandle, tmpl []ck.Attribute) (_ ObjectHandle, err error) {
	defer m.finish("CopyObject", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return 0, err
	}
	return 0, m.writeOp("CopyObject", h, tmpl)
}

// DestroyObject is C_DestroyObject.
func (m *Module) DestroyObject(h SessionHandle, obj ObjectHandle) (err error) {
	defer m.finish("DestroyObject", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return err
	}
	return m.writeOp("DestroyObject", h, nil)
}

// SetAttributeValue is C_SetAttributeValue.
func (m *Module) SetAttributeValue(h SessionHandle, obj ObjectHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish("SetAttributeValue", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return err
	}
	return m.writeOp("SetAttributeValue", h, nil)
}

// GenerateKey is C_GenerateKey (the C layer also uses it for
// C_GenerateKeyPair, C_UnwrapKey and C_DeriveKey, which all create objects).
func (m *Module) GenerateKey(h SessionHandle, tmpl []ck.Attribute) (ObjectHandle, error) {
	return 0, m.writeOp("GenerateKey", h, tmpl)
}

// lookupObject finds an object visible to the session.
func (m *Module) lookupObject(h SessionHandle, obj ObjectHandle) (*objects.Object, error) {
	_, s, err := m.session(h)
	if err != nil {
		return nil, err
	}
	o := s.tok.objects().Get(obj)
	if o == nil || !s.tok.visible(o) {
		return nil, ck.CKR_OBJECT_HANDLE_INVALID
	}
	return o, nil
}

// GetObjectSize is C_GetObjectSize.
func (m *Module) GetObjectSize(h SessionHandle, obj ObjectHandle) (_ uint, err error) {
	defer m.finish("GetObjectSize", &err)
	o, err := m.lookupObject(h, obj)
	if err != nil {
		return 0, err
	}
	return o.Size(), nil
}

// GetAttributeValue is C_GetAttributeValue with the per-attribute rules
// of AttributeRequest; the returned error is the combined code.
func (m *Module) GetAttributeValue(h SessionHandle, obj ObjectHandle, tmpl []AttributeRequest) (err error) {
	defer m.finish("GetAttributeValue", &err)
	o, err := m.lookupObject(h, obj)
	if err != nil {
		return err
	}
	return o.GetAttributes(tmpl)
}

// FindObjectsInit is C_FindObjectsInit: the matching objects are chosen
// now, from memory.
func (m *Module) FindObjectsInit(h SessionHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish("FindObjectsInit", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	t := s.tok
	t.maybeRefresh()
	var found []ObjectHandle
	for _, o := range t.objects().List {
		if t.visible(o) && o.Matches(tmpl) {
			found = append(found, o.Handle)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finding {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.finding, s.find = true, found
	return nil
}

// FindObjects is C_FindObjects: up to max handles.
func (m *Module) FindObjects(h SessionHandle, max int) (out []ObjectHandle, err error) {
	defer m.finish("FindObjects", &err)
	_, s, err := m.session(h)
	if err != nil {
		return nil, err
	}
	if max < 0 {
		return nil, ck.CKR_ARGUMENTS_BAD
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.finding {
		return nil, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	n := min(max, len(s.find))
	out = append([]ObjectHandle(nil), s.find[:n]...)
	s.find = s.find[n:]
	return out, nil
}

// FindObjectsFinal is C_FindObjectsFinal.
func (m *Module) FindObjectsFinal(h SessionHandle) (err error) {
	defer m.finish("FindObjectsFinal", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.finding {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	s.finding, s.find = false, nil
	return nil
}

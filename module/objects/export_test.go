package objects

import (
	"crypto/ecdsa"
	"sync"
)

// What the external tests (package objects_test) see of the internals.

// CKDate is ckDate.
var CKDate = ckDate

// AttrsBuilt reports whether o's attribute map was built.
func (o *Object) AttrsBuilt() bool { return o.attrs != nil }

// ResetAttrs drops o's attribute map, to be built again.
func (o *Object) ResetAttrs() { o.attrs, o.once = nil, sync.Once{} }

// Value is o.value.
func (o *Object) Value(t uint) ([]byte, bool) { return o.value(t) }

// Attributes is o.attributes.
func (o *Object) Attributes() map[uint][]byte { return o.attributes() }

// Sensitive is o.sensitive.
func (o *Object) Sensitive() map[uint]bool { return o.sensitive }

// ECPub is k.ecPub.
func (k *KeyInfo) ECPub() *ecdsa.PublicKey { return k.ecPub }

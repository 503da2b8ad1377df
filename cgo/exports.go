package main

/*
#cgo !windows pkg-config: p11-kit-1
#cgo linux LDFLAGS: -Wl,--as-needed ${SRCDIR}/exports.o
#include "csctoken.h"

void csct_set_identity(const CK_INFO *info);
*/
import "C"

import (
	"bytes"
	"time"
	"unsafe"

	"github.com/csctoken/csctoken/internal/consentbrowser"
	"github.com/csctoken/csctoken/internal/hostapp"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
)

// Bounds on what a C caller may hand over, so that unsafe.Slice never
// panics on a garbage length: a bigger input is CKR_ARGUMENTS_BAD, a
// bigger output buffer is used up to this size (no answer is that long).
const (
	maxLen   = 1 << 40 // bytes of a data or output buffer
	maxValue = 1 << 30 // bytes of one template attribute value
	maxCount = 1 << 20 // entries of a template or handle array
)

// mod is the one module instance of the library; C_Initialize and
// C_Finalize start and stop it, any number of times.
// The host program sets how long C_Sign may wait for a person
// (hostapp: Firefox cannot wait).
var mod = module.New(module.Options{LoadConfig: loadConfig, NewService: newService, FirstListingWait: 3 * time.Second,
	SignWait: host.SignWait(), HandshakeLimit: host.HandshakeLimit(), RemoteOnCaller: remoteOnCaller})

var host = hostapp.Current()

func init() {
	// Give the C side the module's identity for the CK_INFO of the empty
	// module it serves in forked children (pkcs11.c).
	var info C.CK_INFO
	fillInfo(&info, module.Info{
		CryptokiVersion:    module.CryptokiVersion,
		ManufacturerID:     [32]byte(ck.PadString(module.ManufacturerID, 32)),
		LibraryDescription: [32]byte(ck.PadString(module.LibraryDesc, 32)),
		LibraryVersion:     module.LibraryVersion,
	})
	C.csct_set_identity(&info)
}

// rvOf is the CK_RV of a module error.
func rvOf(err error) C.CK_RV { return C.CK_RV(ck.RV(err)) }

// guard is deferred by every export: a panic (a bug in this file; the
// module recovers its own) must never unwind into the host program.
func guard(op string, rv *C.CK_RV) {
	if r := recover(); r != nil {
		logPanic(op, r)
		*rv = C.CKR_GENERAL_ERROR
	}
}

// inBytes returns the n bytes at p for reading (nil for NULL; pkcs11.c
// has checked that NULL comes with n == 0, but for the calls whose
// argument errors end an operation, which check it themselves). The slice aliases C memory and
// must not outlive the call.
func inBytes(p unsafe.Pointer, n C.CK_ULONG) ([]byte, bool) {
	if p == nil {
		return nil, true
	}
	if uint64(n) > maxLen {
		return nil, false
	}
	return unsafe.Slice((*byte)(p), int(n)), true
}

// outBytes returns the caller's output buffer of n bytes, nil for NULL
// (a length query).
func outBytes(p unsafe.Pointer, n C.CK_ULONG) []byte {
	if p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), int(min(uint64(n), maxLen)))
}

// copyBytes returns a Go copy of an input (PINs, labels, parameters).
func copyBytes(p unsafe.Pointer, n C.CK_ULONG) ([]byte, bool) {
	b, ok := inBytes(p, n)
	if !ok || b == nil {
		return nil, ok
	}
	return bytes.Clone(b), true
}

// template converts a CK_ATTRIBUTE array to Go values (copied).
func template(p *C.CK_ATTRIBUTE, n C.CK_ULONG) ([]ck.Attribute, bool) {
	if n == 0 {
		return nil, true
	}
	if p == nil || uint64(n) > maxCount {
		return nil, false
	}
	out := make([]ck.Attribute, int(n))
	for i := range out {
		a := C.csct_attr_at(p, C.CK_ULONG(i))
		if a.ptr == nil && a.length != 0 || uint64(a.length) > maxValue {
			return nil, false
		}
		v, _ := copyBytes(a.ptr, a.length)
		out[i] = ck.Attribute{Type: uint(a._type), Value: v}
	}
	return out, true
}

// mechanism converts a CK_MECHANISM (checked non-NULL by pkcs11.c).
func mechanism(p *C.CK_MECHANISM) (ck.Mechanism, bool) {
	m := C.csct_mech_of(p)
	if uint64(m.length) > maxValue {
		return ck.Mechanism{}, false
	}
	param, ok := copyBytes(m.ptr, m.length)
	return ck.Mechanism{Type: uint(m._type), Parameter: param}, ok
}

// putFixed copies a space-padded fixed-width field into C memory.
func putFixed(dst unsafe.Pointer, n int, src []byte) {
	copy(unsafe.Slice((*byte)(dst), n), src)
}

func version(v ck.Version) C.CK_VERSION {
	return C.CK_VERSION{major: C.CK_BYTE(v.Major), minor: C.CK_BYTE(v.Minor)}
}

// ulong converts a module count; ck.UnavailableInformation becomes
// CK_UNAVAILABLE_INFORMATION whatever the width of CK_ULONG.
func ulong(v uint) C.CK_ULONG { return C.CK_ULONG(v) }

// endOperation ends the session's operations named in flags and answers
// rv, or the session's error (an invalid handle). The calls that end the
// active operation whatever they answer (C_Sign, C_SignFinal, C_Digest,
// C_DigestFinal, C_Verify, C_VerifyFinal: PKCS#11 §5.2) end it on
// arguments they cannot use too (a NULL length pointer, a NULL buffer with
// a length: rv CKR_ARGUMENTS_BAD); C_SignInit, C_VerifyInit and
// C_DigestInit with a NULL mechanism end it (PKCS#11 3.0; rv CKR_OK).
func endOperation(h C.CK_SESSION_HANDLE, flags uint, rv C.CK_RV) C.CK_RV {
	if err := mod.EndOperation(module.SessionHandle(h), flags); err != nil {
		return rvOf(err)
	}
	return rv
}

// lengthResult stores n in *pul when the code says the length is valid:
// on success and with CKR_BUFFER_TOO_SMALL.
func lengthResult(err error, n int, pul *C.CK_ULONG) C.CK_RV {
	rv := rvOf(err)
	if rv == C.CKR_OK || rv == C.CKR_BUFFER_TOO_SMALL {
		*pul = C.CK_ULONG(n)
	}
	return rv
}

// putList implements the PKCS#11 list convention for n items: a NULL
// buffer asks for the count; a short one gets CKR_BUFFER_TOO_SMALL with
// the count set; else put(i) fills entry i.
func putList(n int, isNull bool, pulCount *C.CK_ULONG, put func(i int)) C.CK_RV {
	if isNull {
		*pulCount = C.CK_ULONG(n)
		return C.CKR_OK
	}
	if uint64(*pulCount) < uint64(n) {
		*pulCount = C.CK_ULONG(n)
		return C.CKR_BUFFER_TOO_SMALL
	}
	for i := 0; i < n; i++ {
		put(i)
	}
	*pulCount = C.CK_ULONG(n)
	return C.CKR_OK
}

// ---- general purpose -------------------------------------------------------

//export goInitialize
func goInitialize(flags C.CK_FLAGS, mutexes, reserved C.int) (rv C.CK_RV) {
	defer guard("Initialize", &rv)
	err := mod.Initialize(module.InitArgs{
		Flags:          uint(flags),
		MutexFuncs:     int(mutexes),
		ReservedNonNil: reserved != 0,
	})
	if err == nil && afterInitialize != nil {
		afterInitialize()
	}
	return rvOf(err)
}

//export goFinalize
func goFinalize() (rv C.CK_RV) {
	defer guard("Finalize", &rv)
	err := mod.Finalize()
	// The host may exit next: no consent browser outlives it.
	consentbrowser.CloseAll(500 * time.Millisecond)
	return rvOf(err)
}

func fillInfo(p *C.CK_INFO, info module.Info) {
	p.cryptokiVersion = version(info.CryptokiVersion)
	putFixed(unsafe.Pointer(&p.manufacturerID), len(p.manufacturerID), info.ManufacturerID[:])
	C.csct_info_set_flags(p, C.CK_FLAGS(info.Flags))
	putFixed(unsafe.Pointer(&p.libraryDescription), len(p.libraryDescription), info.LibraryDescription[:])
	p.libraryVersion = version(info.LibraryVersion)
}

//export goGetInfo
func goGetInfo(p *C.CK_INFO) (rv C.CK_RV) {
	defer guard("GetInfo", &rv)
	info, err := mod.GetInfo()
	if err != nil {
		return rvOf(err)
	}
	fillInfo(p, info)
	return C.CKR_OK
}

// ---- slots and tokens ------------------------------------------------------

//export goGetSlotList
func goGetSlotList(tokenPresent C.CK_BBOOL, pList *C.CK_SLOT_ID, pulCount *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("GetSlotList", &rv)
	ids, err := mod.GetSlotList(tokenPresent != C.CK_FALSE)
	if err != nil {
		return rvOf(err)
	}
	return putList(len(ids), pList == nil, pulCount, func(i int) {
		unsafe.Slice(pList, len(ids))[i] = C.CK_SLOT_ID(ids[i])
	})
}

//export goGetSlotInfo
func goGetSlotInfo(slot C.CK_SLOT_ID, p *C.CK_SLOT_INFO) (rv C.CK_RV) {
	defer guard("GetSlotInfo", &rv)
	info, err := mod.GetSlotInfo(module.SlotID(slot))
	if err != nil {
		return rvOf(err)
	}
	putFixed(unsafe.Pointer(&p.slotDescription), len(p.slotDescription), info.SlotDescription[:])
	putFixed(unsafe.Pointer(&p.manufacturerID), len(p.manufacturerID), info.ManufacturerID[:])
	p.flags = C.CK_FLAGS(info.Flags)
	p.hardwareVersion = version(info.HardwareVersion)
	p.firmwareVersion = version(info.FirmwareVersion)
	return C.CKR_OK
}

//export goGetTokenInfo
func goGetTokenInfo(slot C.CK_SLOT_ID, p *C.CK_TOKEN_INFO) (rv C.CK_RV) {
	defer guard("GetTokenInfo", &rv)
	info, err := mod.GetTokenInfo(module.SlotID(slot))
	if err != nil {
		return rvOf(err)
	}
	putFixed(unsafe.Pointer(&p.label), len(p.label), info.Label[:])
	putFixed(unsafe.Pointer(&p.manufacturerID), len(p.manufacturerID), info.ManufacturerID[:])
	putFixed(unsafe.Pointer(&p.model), len(p.model), info.Model[:])
	putFixed(unsafe.Pointer(&p.serialNumber), len(p.serialNumber), info.SerialNumber[:])
	p.flags = C.CK_FLAGS(info.Flags)
	p.ulMaxSessionCount = ulong(info.MaxSessionCount)
	p.ulSessionCount = ulong(info.SessionCount)
	p.ulMaxRwSessionCount = ulong(info.MaxRwSessionCount)
	p.ulRwSessionCount = ulong(info.RwSessionCount)
	p.ulMaxPinLen = ulong(info.MaxPinLen)
	p.ulMinPinLen = ulong(info.MinPinLen)
	p.ulTotalPublicMemory = ulong(info.TotalPublicMemory)
	p.ulFreePublicMemory = ulong(info.FreePublicMemory)
	p.ulTotalPrivateMemory = ulong(info.TotalPrivateMemory)
	p.ulFreePrivateMemory = ulong(info.FreePrivateMemory)
	p.hardwareVersion = version(info.HardwareVersion)
	p.firmwareVersion = version(info.FirmwareVersion)
	putFixed(unsafe.Pointer(&p.utcTime), len(p.utcTime), info.UTCTime[:])
	return C.CKR_OK
}

//export goWaitForSlotEvent
func goWaitForSlotEvent(flags C.CK_FLAGS, pSlot *C.CK_SLOT_ID) (rv C.CK_RV) {
	defer guard("WaitForSlotEvent", &rv)
	id, err := mod.WaitForSlotEvent(uint(flags))
	if err == nil {
		*pSlot = C.CK_SLOT_ID(id)
	}
	return rvOf(err)
}

//export goGetMechanismList
func goGetMechanismList(slot C.CK_SLOT_ID, pList *C.CK_MECHANISM_TYPE, pulCount *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("GetMechanismList", &rv)
	mechs, err := mod.GetMechanismList(module.SlotID(slot))
	if err != nil {
		return rvOf(err)
	}
	return putList(len(mechs), pList == nil, pulCount, func(i int) {
		unsafe.Slice(pList, len(mechs))[i] = C.CK_MECHANISM_TYPE(mechs[i])
	})
}

//export goGetMechanismInfo
func goGetMechanismInfo(slot C.CK_SLOT_ID, typ C.CK_MECHANISM_TYPE, p *C.CK_MECHANISM_INFO) (rv C.CK_RV) {
	defer guard("GetMechanismInfo", &rv)
	info, err := mod.GetMechanismInfo(module.SlotID(slot), uint(typ))
	if err != nil {
		return rvOf(err)
	}
	p.ulMinKeySize = ulong(info.MinKeySize)
	p.ulMaxKeySize = ulong(info.MaxKeySize)
	p.flags = C.CK_FLAGS(info.Flags)
	return C.CKR_OK
}

//export goInitToken
func goInitToken(slot C.CK_SLOT_ID, pPin *C.CK_UTF8CHAR, pinLen C.CK_ULONG, pLabel *C.CK_UTF8CHAR) (rv C.CK_RV) {
	defer guard("InitToken", &rv)
	pin, ok := copyBytes(unsafe.Pointer(pPin), pinLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	label, _ := copyBytes(unsafe.Pointer(pLabel), 32)
	return rvOf(mod.InitToken(module.SlotID(slot), pin, label))
}

//export goInitPIN
func goInitPIN(h C.CK_SESSION_HANDLE, pPin *C.CK_UTF8CHAR, pinLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("InitPIN", &rv)
	pin, ok := copyBytes(unsafe.Pointer(pPin), pinLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.InitPIN(module.SessionHandle(h), pin))
}

//export goSetPIN
func goSetPIN(h C.CK_SESSION_HANDLE, pOld *C.CK_UTF8CHAR, oldLen C.CK_ULONG, pNew *C.CK_UTF8CHAR, newLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("SetPIN", &rv)
	oldPIN, ok1 := copyBytes(unsafe.Pointer(pOld), oldLen)
	newPIN, ok2 := copyBytes(unsafe.Pointer(pNew), newLen)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.SetPIN(module.SessionHandle(h), oldPIN, newPIN))
}

// ---- sessions --------------------------------------------------------------

//export goOpenSession
func goOpenSession(slot C.CK_SLOT_ID, flags C.CK_FLAGS, ph *C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("OpenSession", &rv)
	h, err := mod.OpenSession(module.SlotID(slot), uint(flags))
	if err == nil {
		*ph = C.CK_SESSION_HANDLE(h)
	}
	return rvOf(err)
}

//export goCloseSession
func goCloseSession(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("CloseSession", &rv)
	return rvOf(mod.CloseSession(module.SessionHandle(h)))
}

//export goSessionCancel
func goSessionCancel(h C.CK_SESSION_HANDLE, flags C.CK_FLAGS) (rv C.CK_RV) {
	defer guard("SessionCancel", &rv)
	return rvOf(mod.SessionCancel(module.SessionHandle(h), uint(flags)))
}

//export goCloseAllSessions
func goCloseAllSessions(slot C.CK_SLOT_ID) (rv C.CK_RV) {
	defer guard("CloseAllSessions", &rv)
	return rvOf(mod.CloseAllSessions(module.SlotID(slot)))
}

//export goGetSessionInfo
func goGetSessionInfo(h C.CK_SESSION_HANDLE, p *C.CK_SESSION_INFO) (rv C.CK_RV) {
	defer guard("GetSessionInfo", &rv)
	info, err := mod.GetSessionInfo(module.SessionHandle(h))
	if err != nil {
		return rvOf(err)
	}
	p.slotID = C.CK_SLOT_ID(info.SlotID)
	p.state = C.CK_STATE(info.State)
	p.flags = C.CK_FLAGS(info.Flags)
	p.ulDeviceError = ulong(info.DeviceError)
	return C.CKR_OK
}

//export goLogin
func goLogin(h C.CK_SESSION_HANDLE, userType C.CK_USER_TYPE, pPin *C.CK_UTF8CHAR, pinLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("Login", &rv)
	pin, ok := copyBytes(unsafe.Pointer(pPin), pinLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	if pPin != nil && pin == nil {
		pin = []byte{} // an empty PIN, not a missing one
	}
	err := mod.Login(module.SessionHandle(h), uint(userType), pin)
	clear(pin)
	return rvOf(err)
}

//export goLogout
func goLogout(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("Logout", &rv)
	return rvOf(mod.Logout(module.SessionHandle(h)))
}

// ---- objects ---------------------------------------------------------------

//export goCreateObject
func goCreateObject(h C.CK_SESSION_HANDLE, pTmpl *C.CK_ATTRIBUTE, n C.CK_ULONG, ph *C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("CreateObject", &rv)
	tmpl, ok := template(pTmpl, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	obj, err := mod.CreateObject(module.SessionHandle(h), tmpl)
	if err == nil {
		*ph = C.CK_OBJECT_HANDLE(obj)
	}
	return rvOf(err)
}

//export goCopyObject
func goCopyObject(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pTmpl *C.CK_ATTRIBUTE, n C.CK_ULONG, ph *C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("CopyObject", &rv)
	tmpl, ok := template(pTmpl, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	newObj, err := mod.CopyObject(module.SessionHandle(h), module.ObjectHandle(obj), tmpl)
	if err == nil {
		*ph = C.CK_OBJECT_HANDLE(newObj)
	}
	return rvOf(err)
}

//export goDestroyObject
func goDestroyObject(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("DestroyObject", &rv)
	return rvOf(mod.DestroyObject(module.SessionHandle(h), module.ObjectHandle(obj)))
}

//export goGetObjectSize
func goGetObjectSize(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pulSize *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("GetObjectSize", &rv)
	size, err := mod.GetObjectSize(module.SessionHandle(h), module.ObjectHandle(obj))
	if err == nil {
		*pulSize = ulong(size)
	}
	return rvOf(err)
}

// goGetAttributeValue follows PKCS#11 v2.40 §5.7.5: every entry is
// answered; ulValueLen is the value's length, or CK_UNAVAILABLE_INFORMATION
// for a sensitive or unknown attribute or a buffer too small; the code
// combines them.
//
//export goGetAttributeValue
func goGetAttributeValue(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pTmpl *C.CK_ATTRIBUTE, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard("GetAttributeValue", &rv)
	if uint64(n) > maxCount {
		return C.CKR_ARGUMENTS_BAD
	}
	reqs := make([]module.AttributeRequest, int(n))
	for i := range reqs {
		a := C.csct_attr_at(pTmpl, C.CK_ULONG(i))
		reqs[i] = module.AttributeRequest{Type: uint(a._type), Buf: outBytes(a.ptr, a.length)}
	}
	rv = rvOf(mod.GetAttributeValue(module.SessionHandle(h), module.ObjectHandle(obj), reqs))
	switch rv {
	case C.CKR_OK, C.CKR_ATTRIBUTE_SENSITIVE, C.CKR_ATTRIBUTE_TYPE_INVALID, C.CKR_BUFFER_TOO_SMALL:
		for i := range reqs {
			C.csct_attr_set_len(pTmpl, C.CK_ULONG(i), ulong(reqs[i].Len))
		}
	}
	return rv
}

//export goSetAttributeValue
func goSetAttributeValue(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pTmpl *C.CK_ATTRIBUTE, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard("SetAttributeValue", &rv)
	tmpl, ok := template(pTmpl, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.SetAttributeValue(module.SessionHandle(h), module.ObjectHandle(obj), tmpl))
}

//export goFindObjectsInit
func goFindObjectsInit(h C.CK_SESSION_HANDLE, pTmpl *C.CK_ATTRIBUTE, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard("FindObjectsInit", &rv)
	tmpl, ok := template(pTmpl, n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.FindObjectsInit(module.SessionHandle(h), tmpl))
}

//export goFindObjects
func goFindObjects(h C.CK_SESSION_HANDLE, pObj *C.CK_OBJECT_HANDLE, max C.CK_ULONG, pulCount *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("FindObjects", &rv)
	found, err := mod.FindObjects(module.SessionHandle(h), int(min(uint64(max), maxCount)))
	if err != nil {
		return rvOf(err)
	}
	if len(found) > 0 {
		out := unsafe.Slice(pObj, len(found))
		for i, o := range found {
			out[i] = C.CK_OBJECT_HANDLE(o)
		}
	}
	*pulCount = C.CK_ULONG(len(found))
	return C.CKR_OK
}

//export goFindObjectsFinal
func goFindObjectsFinal(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("FindObjectsFinal", &rv)
	return rvOf(mod.FindObjectsFinal(module.SessionHandle(h)))
}

// ---- digests ---------------------------------------------------------------

//export goDigestInit
func goDigestInit(h C.CK_SESSION_HANDLE, pMech *C.CK_MECHANISM) (rv C.CK_RV) {
	defer guard("DigestInit", &rv)
	if pMech == nil {
		return endOperation(h, ck.CKF_DIGEST, C.CKR_OK)
	}
	mech, ok := mechanism(pMech)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.DigestInit(module.SessionHandle(h), mech))
}

//export goDigest
func goDigest(h C.CK_SESSION_HANDLE, pData *C.CK_BYTE, dataLen C.CK_ULONG, pOut *C.CK_BYTE, pulOut *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("Digest", &rv)
	data, ok := inBytes(unsafe.Pointer(pData), dataLen)
	if !ok || (pData == nil && dataLen != 0) || pulOut == nil {
		return endOperation(h, ck.CKF_DIGEST, C.CKR_ARGUMENTS_BAD)
	}
	n, err := mod.Digest(module.SessionHandle(h), data, outBytes(unsafe.Pointer(pOut), *pulOut))
	return lengthResult(err, n, pulOut)
}

//export goDigestUpdate
func goDigestUpdate(h C.CK_SESSION_HANDLE, pPart *C.CK_BYTE, partLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("DigestUpdate", &rv)
	part, ok := inBytes(unsafe.Pointer(pPart), partLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.DigestUpdate(module.SessionHandle(h), part))
}

//export goDigestKey
func goDigestKey(h C.CK_SESSION_HANDLE, key C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("DigestKey", &rv)
	return rvOf(mod.DigestKey(module.SessionHandle(h), module.ObjectHandle(key)))
}

//export goDigestFinal
func goDigestFinal(h C.CK_SESSION_HANDLE, pOut *C.CK_BYTE, pulOut *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("DigestFinal", &rv)
	if pulOut == nil {
		return endOperation(h, ck.CKF_DIGEST, C.CKR_ARGUMENTS_BAD)
	}
	n, err := mod.DigestFinal(module.SessionHandle(h), outBytes(unsafe.Pointer(pOut), *pulOut))
	return lengthResult(err, n, pulOut)
}

// ---- signatures and verification -------------------------------------------

//export goSignInit
func goSignInit(h C.CK_SESSION_HANDLE, pMech *C.CK_MECHANISM, key C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("SignInit", &rv)
	if pMech == nil {
		return endOperation(h, ck.CKF_SIGN, C.CKR_OK)
	}
	mech, ok := mechanism(pMech)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.SignInit(module.SessionHandle(h), mech, module.ObjectHandle(key)))
}

// goSign may wait on the network; it holds no lock of the C side, and
// C_Finalize or C_CloseSession on another thread cancel it.
//
//export goSign
func goSign(h C.CK_SESSION_HANDLE, pData *C.CK_BYTE, dataLen C.CK_ULONG, pSig *C.CK_BYTE, pulSig *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("Sign", &rv)
	data, ok := inBytes(unsafe.Pointer(pData), dataLen)
	if !ok || (pData == nil && dataLen != 0) || pulSig == nil {
		return endOperation(h, ck.CKF_SIGN, C.CKR_ARGUMENTS_BAD)
	}
	n, err := mod.Sign(module.SessionHandle(h), data, outBytes(unsafe.Pointer(pSig), *pulSig))
	return lengthResult(err, n, pulSig)
}

//export goSignUpdate
func goSignUpdate(h C.CK_SESSION_HANDLE, pPart *C.CK_BYTE, partLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("SignUpdate", &rv)
	part, ok := inBytes(unsafe.Pointer(pPart), partLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.SignUpdate(module.SessionHandle(h), part))
}

//export goSignFinal
func goSignFinal(h C.CK_SESSION_HANDLE, pSig *C.CK_BYTE, pulSig *C.CK_ULONG) (rv C.CK_RV) {
	defer guard("SignFinal", &rv)
	if pulSig == nil {
		return endOperation(h, ck.CKF_SIGN, C.CKR_ARGUMENTS_BAD)
	}
	n, err := mod.SignFinal(module.SessionHandle(h), outBytes(unsafe.Pointer(pSig), *pulSig))
	return lengthResult(err, n, pulSig)
}

//export goVerifyInit
func goVerifyInit(h C.CK_SESSION_HANDLE, pMech *C.CK_MECHANISM, key C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("VerifyInit", &rv)
	if pMech == nil {
		return endOperation(h, ck.CKF_VERIFY, C.CKR_OK)
	}
	mech, ok := mechanism(pMech)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.VerifyInit(module.SessionHandle(h), mech, module.ObjectHandle(key)))
}

//export goVerify
func goVerify(h C.CK_SESSION_HANDLE, pData *C.CK_BYTE, dataLen C.CK_ULONG, pSig *C.CK_BYTE, sigLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("Verify", &rv)
	data, ok1 := inBytes(unsafe.Pointer(pData), dataLen)
	sig, ok2 := inBytes(unsafe.Pointer(pSig), sigLen)
	if !ok1 || !ok2 || (pData == nil && dataLen != 0) || (pSig == nil && sigLen != 0) {
		return endOperation(h, ck.CKF_VERIFY, C.CKR_ARGUMENTS_BAD)
	}
	return rvOf(mod.Verify(module.SessionHandle(h), data, sig))
}

//export goVerifyUpdate
func goVerifyUpdate(h C.CK_SESSION_HANDLE, pPart *C.CK_BYTE, partLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("VerifyUpdate", &rv)
	part, ok := inBytes(unsafe.Pointer(pPart), partLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.VerifyUpdate(module.SessionHandle(h), part))
}

//export goVerifyFinal
func goVerifyFinal(h C.CK_SESSION_HANDLE, pSig *C.CK_BYTE, sigLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("VerifyFinal", &rv)
	sig, ok := inBytes(unsafe.Pointer(pSig), sigLen)
	if !ok || (pSig == nil && sigLen != 0) {
		return endOperation(h, ck.CKF_VERIFY, C.CKR_ARGUMENTS_BAD)
	}
	return rvOf(mod.VerifyFinal(module.SessionHandle(h), sig))
}

// ---- key management --------------------------------------------------------

// goGenerateKey answers every function that would create a key
// (C_GenerateKey, C_GenerateKeyPair with both templates, C_UnwrapKey,
// C_DeriveKey): the token is write-protected, so the module refuses them.
// ph receives the handle if it ever succeeds; with ph NULL (several or
// no handle to return) success would be a bug, reported as such.
//
//export goGenerateKey
func goGenerateKey(h C.CK_SESSION_HANDLE, pT1 *C.CK_ATTRIBUTE, n1 C.CK_ULONG, pT2 *C.CK_ATTRIBUTE, n2 C.CK_ULONG, ph *C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard("GenerateKey", &rv)
	t1, ok1 := template(pT1, n1)
	t2, ok2 := template(pT2, n2)
	if !ok1 || !ok2 {
		return C.CKR_ARGUMENTS_BAD
	}
	obj, err := mod.GenerateKey(module.SessionHandle(h), append(t1, t2...))
	switch {
	case err != nil:
		return rvOf(err)
	case ph == nil:
		return C.CKR_GENERAL_ERROR
	}
	*ph = C.CK_OBJECT_HANDLE(obj)
	return C.CKR_OK
}

// ---- random numbers and legacy functions -----------------------------------

//export goSeedRandom
func goSeedRandom(h C.CK_SESSION_HANDLE, pSeed *C.CK_BYTE, seedLen C.CK_ULONG) (rv C.CK_RV) {
	defer guard("SeedRandom", &rv)
	seed, ok := inBytes(unsafe.Pointer(pSeed), seedLen)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.SeedRandom(module.SessionHandle(h), seed))
}

//export goGenerateRandom
func goGenerateRandom(h C.CK_SESSION_HANDLE, pOut *C.CK_BYTE, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard("GenerateRandom", &rv)
	out, ok := inBytes(unsafe.Pointer(pOut), n)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return rvOf(mod.GenerateRandom(module.SessionHandle(h), out))
}

//export goGetFunctionStatus
func goGetFunctionStatus(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("GetFunctionStatus", &rv)
	return rvOf(mod.GetFunctionStatus(module.SessionHandle(h)))
}

//export goCancelFunction
func goCancelFunction(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard("CancelFunction", &rv)
	return rvOf(mod.CancelFunction(module.SessionHandle(h)))
}

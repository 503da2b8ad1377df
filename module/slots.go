package module

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/objects"
)

// Info is CK_INFO.
type Info struct {
	CryptokiVersion    ck.Version
	ManufacturerID     [32]byte
	Flags              uint
	LibraryDescription [32]byte
	LibraryVersion     ck.Version
}

// SlotInfo is CK_SLOT_INFO.
type SlotInfo struct {
	SlotDescription [64]byte
	ManufacturerID  [32]byte
	Flags           uint
	HardwareVersion ck.Version
	FirmwareVersion ck.Version
}

// TokenInfo is CK_TOKEN_INFO.
type TokenInfo struct {
	Label              [32]byte
	ManufacturerID     [32]byte
	Model              [16]byte
	SerialNumber       [16]byte
	Flags              uint
	MaxSessionCount    uint
	SessionCount       uint
	MaxRwSessionCount  uint
	RwSessionCount     uint
	MaxPinLen          uint
	MinPinLen          uint
	TotalPublicMemory  uint
	FreePublicMemory   uint
	TotalPrivateMemory uint
	FreePrivateMemory  uint
	HardwareVersion    ck.Version
	FirmwareVersion    ck.Version
	UTCTime            [16]byte
}

// MechanismInfo is CK_MECHANISM_INFO.
type MechanismInfo struct {
	MinKeySize uint
	MaxKeySize uint
	Flags      uint
}

func pad32(s string) (out [32]byte) { copy(out[:], ck.PadString(s, 32)); return }
func pad16(s string) (out [16]byte) { copy(out[:], ck.PadString(s, 16)); return }
func pad64(s string) (out [64]byte) { copy(out[:], ck.PadString(s, 64)); return }

// GetInfo is C_GetInfo.
func (m *Module) GetInfo() (info Info, err error) {
	defer m.finish("GetInfo", &err)
	if _, err := m.state(); err != nil {
		return Info{}, err
	}
	return Info{
		CryptokiVersion:    CryptokiVersion,
		ManufacturerID:     pad32(ManufacturerID),
		LibraryDescription: pad32(LibraryDesc),
		LibraryVersion:     LibraryVersion,
	}, nil
}

// GetSlotList is C_GetSlotList. Every slot always has its token, so
// tokenPresent changes nothing.
func (m *Module) GetSlotList(tokenPresent bool) (ids []SlotID, err error) {
	defer m.finish("GetSlotList", &err)
	st, err := m.state()
	if err != nil {
		return nil, err
	}
	ids = make([]SlotID, len(st.tokens))
	for i := range st.tokens {
		ids[i] = SlotID(i)
	}
	return ids, nil
}

func (st *state) token(id SlotID) (*token, error) {
	if uint(id) >= uint(len(st.tokens)) {
		return nil, ck.CKR_SLOT_ID_INVALID
	}
	return st.tokens[id], nil
}

// GetSlotInfo is C_GetSlotInfo.
func (m *Module) GetSlotInfo(id SlotID) (info SlotInfo, err error) {
	defer m.finish("GetSlotInfo", &err)
	st, err := m.state()
	if err != nil {
		return SlotInfo{}, err
	}
	t, err := st.token(id)
	if err != nil {
		return SlotInfo{}, err
	}
	desc := t.cfg.Name
	if u, err := url.Parse(t.cfg.URL); err == nil {
		desc += " (" + u.Host + ")"
	}
	return SlotInfo{
		SlotDescription: pad64(desc),
		ManufacturerID:  pad32(ManufacturerID),
		Flags:           ck.CKF_TOKEN_PRESENT,
		HardwareVersion: LibraryVersion,
		FirmwareVersion: LibraryVersion,
	}, nil
}

// tokenSerial is the stable token serial: 16 hex digits of
// SHA-256(base URL, user).
func tokenSerial(sc config.Service) string {
	user := sc.Username
	sum := sha256.Sum256([]byte(sc.URL + "\x00" + user))
	return hex.EncodeToString(sum[:8])
}

// GetTokenInfo is C_GetTokenInfo. No network I/O.
func (m *Module) GetTokenInfo(id SlotID) (info TokenInfo, err error) {
	defer m.finish("GetTokenInfo", &err)
	st, err := m.state()
	if err != nil {
		return TokenInfo{}, err
	}
	t, err := st.token(id)
	if err != nil {
		return TokenInfo{}, err
	}
	all, rw := st.sessionCounts(t)
	model := "CSC " + t.cfg.Version()
	return TokenInfo{
		Label:              pad32(t.cfg.Name),
		ManufacturerID:     pad32(ManufacturerID),
		Model:              pad16(model),
		SerialNumber:       pad16(t.serial),
		Flags:              t.flags(),
		MaxSessionCount:    ck.EffectivelyInfinite,
		SessionCount:       all,
		MaxRwSessionCount:  ck.EffectivelyInfinite,
		RwSessionCount:     rw,
		MaxPinLen:          256,
		MinPinLen:          0,
		TotalPublicMemory:  ck.UnavailableInformation,
		FreePublicMemory:   ck.UnavailableInformation,
		TotalPrivateMemory: ck.UnavailableInformation,
		FreePrivateMemory:  ck.UnavailableInformation,
		HardwareVersion:    LibraryVersion,
		FirmwareVersion:    LibraryVersion,
		UTCTime:            pad16(""),
	}, nil
}

// GetMechanismList is C_GetMechanismList: the signature mechanisms the
// slot's credentials allow, plus the local digests.
func (m *Module) GetMechanismList(id SlotID) (mechs []uint, err error) {
	defer m.finish("GetMechanismList", &err)
	st, err := m.state()
	if err != nil {
		return nil, err
	}
	t, err := st.token(id)
	if err != nil {
		return nil, err
	}
	infos := t.mechanismInfos()
	for _, md := range objects.SignMechs {
		if _, ok := infos[md.Type]; ok {
			mechs = append(mechs, md.Type)
		}
	}
	return append(mechs, objects.DigestMechs...), nil
}

// GetMechanismInfo is C_GetMechanismInfo.
func (m *Module) GetMechanismInfo(id SlotID, mech uint) (info MechanismInfo, err error) {
	defer m.finish("GetMechanismInfo", &err)
	st, err := m.state()
	if err != nil {
		return MechanismInfo{}, err
	}
	t, err := st.token(id)
	if err != nil {
		return MechanismInfo{}, err
	}
	for _, d := range objects.DigestMechs {
		if d == mech {
			return MechanismInfo{Flags: ck.CKF_DIGEST}, nil
		}
	}
	mi, ok := t.mechanismInfos()[mech]
	if !ok {
		return MechanismInfo{}, ck.CKR_MECHANISM_INVALID
	}
	return mi, nil
}

// WaitForSlotEvent is C_WaitForSlotEvent. Slots never change, so with
// CKF_DONT_BLOCK there is no event, and blocking waits are unsupported.
func (m *Module) WaitForSlotEvent(flags uint) (id SlotID, err error) {
	defer m.finish("WaitForSlotEvent", &err)
	if _, err := m.state(); err != nil {
		return 0, err
	}
	if flags&ck.CKF_DONT_BLOCK != 0 {
		return 0, ck.CKR_NO_EVENT
	}
	return 0, ck.CKR_FUNCTION_NOT_SUPPORTED
}

// Unsupported answers for a PKCS#11 function the module does not implement
// (C_Encrypt*, C_Decrypt*, C_SignRecover*, C_GetOperationState, ...):
// CKR_CRYPTOKI_NOT_INITIALIZED before Initialize, else
// CKR_FUNCTION_NOT_SUPPORTED.
func (m *Module) Unsupported() error {
	if _, err := m.state(); err != nil {
		return err
	}
	return ck.CKR_FUNCTION_NOT_SUPPORTED
}

// InitToken is C_InitToken: the token is write-protected.
func (m *Module) InitToken(id SlotID, soPIN []byte, label []byte) (err error) {
	defer m.finish("InitToken", &err)
	st, err := m.state()
	if err != nil {
		return err
	}
	if _, err := st.token(id); err != nil {
		return err
	}
	return ck.CKR_TOKEN_WRITE_PROTECTED
}

// Refresh lists the slot's credentials now and waits for the result. It is
// not a PKCS#11 function: the csctoken CLI uses it (and tests). The call
// is cancelled by ctx or by Finalize.
func (m *Module) Refresh(ctx context.Context, id SlotID) (err error) {
	defer m.finish("Refresh", &err)
	st, err := m.state()
	if err != nil {
		return err
	}
	t, err := st.token(id)
	if err != nil {
		return err
	}
	c, cancel := context.WithCancel(st.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return t.refresh(c)
}

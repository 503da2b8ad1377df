package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Lists of byte strings (certificate chains, bound digests, audit hashes)
// are stored as one BLOB:
//
//	0x01 (format), uvarint count, then per element: uvarint length, bytes.
//
// The empty list is stored as NULL, so it encodes to nil.

const listFormat = 1

// maxListElems bounds the count a decoder believes, so a corrupt count
// cannot make it allocate without limit.
const maxListElems = 1 << 20

var errBadList = errors.New("malformed list encoding")

func encodeList[T ~[]byte | ~string](l []T) []byte {
	if len(l) == 0 {
		return nil
	}
	n := 1 + binary.MaxVarintLen64
	for _, e := range l {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, listFormat)
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, e := range l {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// decodeList decodes b; empty elements come back as empty (nil for []byte).
func decodeList[T ~[]byte | ~string](b []byte) ([]T, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != listFormat {
		return nil, fmt.Errorf("%w: format %d", errBadList, b[0])
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count == 0 || count > maxListElems || count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad count", errBadList)
	}
	b = b[k:]
	l := make([]T, 0, count)
	for i := uint64(0); i < count; i++ {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: element %d truncated", errBadList, i)
		}
		b = b[k:]
		var e T
		if n > 0 {
			e = T(b[:n:n])
		}
		l = append(l, e)
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadList, len(b))
	}
	return l, nil
}

/*
 * bcryptprimitives.c: a TEST-ONLY stand-in for Windows'
 * bcryptprimitives.dll, which Debian 12's wine (8.0) lacks. Go >= 1.24's
 * runtime draws its randomness from ProcessPrng in that DLL and dies
 * without it. This shim exports ProcessPrng on top of RtlGenRandom
 * (advapi32's SystemFunction036). It is copied only into the throwaway
 * wine prefix of the tests and never shipped: every Windows 10 or later
 * has the real DLL.
 *
 *   x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}

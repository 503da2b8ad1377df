# A UNO component that TestLibreOffice loads INTO soffice.bin (through
# com.sun.star.loader.Python, so it runs in soffice's own Python and NSS):
# it logs an NSS token in with the PIN, as LibreOffice's GUI password
# prompt would. Headless LibreOffice has no such prompt: its NSS password
# callback asks a UNO interaction handler that answers nothing, and
# SecurityEnvironment.getPersonalCertificates() throws NoPasswordException.
#
# NSS is reached with ctypes in the library soffice.bin already loaded
# (libnss3.so, initialized by the SEInitializer the caller created first),
# so this is the same NSS instance, module and session state that
# LibreOffice signs with afterwards. PK11_CheckUserPassword calls C_Login on
# the token's slot without going through the password callback.
#
# execute() takes the NamedValues Token (the token label) and PIN, and
# returns "needLogin=N loggedIn=N error=N" (error: NSS's, 0 on success; a
# wrong PIN is SEC_ERROR_BAD_PASSWORD, -8177). Other failures raise.
import ctypes

import unohelper
from com.sun.star.lang import IllegalArgumentException
from com.sun.star.task import XJob

SEC_SUCCESS = 0


def nss():
    lib = ctypes.CDLL("libnss3.so")  # already in the process: dlopen finds it
    lib.NSS_IsInitialized.restype = ctypes.c_int
    lib.PK11_FindSlotByName.restype = ctypes.c_void_p
    lib.PK11_FindSlotByName.argtypes = [ctypes.c_char_p]
    lib.PK11_NeedLogin.restype = ctypes.c_int
    lib.PK11_NeedLogin.argtypes = [ctypes.c_void_p]
    lib.PK11_IsLoggedIn.restype = ctypes.c_int
    lib.PK11_IsLoggedIn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.PK11_CheckUserPassword.restype = ctypes.c_int
    lib.PK11_CheckUserPassword.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.PK11_FreeSlot.restype = None
    lib.PK11_FreeSlot.argtypes = [ctypes.c_void_p]
    lib.PORT_GetError.restype = ctypes.c_int
    return lib


class NSSLogin(unohelper.Base, XJob):
    def __init__(self, ctx):
        self.ctx = ctx

    def execute(self, args):
        a = {nv.Name: nv.Value for nv in args}
        lib = nss()
        if not lib.NSS_IsInitialized():
            raise IllegalArgumentException("NSS is not initialized in soffice.bin", self, 0)
        slot = lib.PK11_FindSlotByName(a["Token"].encode())
        if not slot:
            raise IllegalArgumentException("no NSS slot for the token %r (error %d)" % (a["Token"], lib.PORT_GetError()), self, 0)
        try:
            need = lib.PK11_NeedLogin(slot)
            rv = lib.PK11_CheckUserPassword(slot, a["PIN"].encode())
            err = lib.PORT_GetError() if rv != SEC_SUCCESS else 0
            logged = lib.PK11_IsLoggedIn(slot, None)
        finally:
            lib.PK11_FreeSlot(slot)
        return "needLogin=%d loggedIn=%d error=%d" % (need, logged, err)


g_ImplementationHelper = unohelper.ImplementationHelper()
g_ImplementationHelper.addImplementation(NSSLogin, "org.csctoken.test.NSSLogin", ("org.csctoken.test.NSSLogin",))

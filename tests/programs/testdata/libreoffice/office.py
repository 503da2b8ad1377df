# Drives a headless soffice over a UNO pipe for TestLibreOffice; run with
# Debian's /usr/bin/python3 (python3-uno). Every command prints one JSON
# object on stdout; a failure prints a traceback on stderr and exits 1.
#
#   office.py login PIPE TOKEN      (PIN on stdin) NSS login inside soffice
#   office.py certs PIPE            the personal certificates, no login
#   office.py sign PIPE CERT OUT    new Writer document OUT (.odt) signed with
#                                   the personal certificate whose DER is in
#                                   the file CERT, then verified
#   office.py pdf PIPE CERT OUT     new Writer document exported as the PDF
#                                   OUT, signed by the PDF export (SignPDF)
#   office.py verify PIPE FILE...   the signatures of each ODF document
#
# Everything LibreOffice does here runs in soffice.bin: its NSS (the
# database of MOZILLA_CERTIFICATE_FOLDER, where libcsctoken.so is
# registered), its XML security code, its storage.
import base64
import json
import os
import sys
import time
import traceback

import uno
import unohelper
from com.sun.star.beans import NamedValue, PropertyValue

READ, WRITE, READWRITE = 1, 4, 7  # com.sun.star.embed.ElementModes
HERE = os.path.dirname(os.path.abspath(__file__))


def prop(cls, name, value):
    p = cls()
    p.Name, p.Value = name, value
    return p


def connect(pipe, limit=60):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + limit
    while True:
        try:
            return resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def security_environment(ctx):
    # The SEInitializer initializes soffice's NSS with its certificate
    # database; the security environment lists and verifies certificates.
    seinit = ctx.ServiceManager.createInstanceWithContext("com.sun.star.xml.crypto.SEInitializer", ctx)
    return seinit.createSecurityContext("").getSecurityEnvironment()


def der(cert):
    return bytes(cert.Encoded.value)


def b64(data):
    return base64.b64encode(data).decode()


def personal(env):
    """The personal certificates (certificates with a private key), or the
    name of the exception LibreOffice throws."""
    try:
        return [b64(der(c)) for c in env.getPersonalCertificates()], ""
    except Exception as e:
        return [], type(e).__name__.split(".")[-1]


def zip_storage(ctx, stream, mode):
    factory = ctx.ServiceManager.createInstanceWithContext("com.sun.star.embed.StorageFactory", ctx)
    fmt = uno.Any("[]com.sun.star.beans.PropertyValue", (prop(PropertyValue, "StorageFormat", "ZipFormat"),))
    return uno.invoke(factory, "createInstanceWithArguments", ((stream, mode, fmt),))


def odf_version(ctx, url):
    factory = ctx.ServiceManager.createInstanceWithContext("com.sun.star.embed.StorageFactory", ctx)
    pkg = factory.createInstanceWithArguments((url, READ))
    try:
        return pkg.getPropertyValue("Version")
    finally:
        pkg.dispose()


def signer_service(ctx, version):
    return ctx.ServiceManager.createInstanceWithArgumentsAndContext(
        "com.sun.star.security.DocumentDigitalSignatures", (version,), ctx)


def verify(ctx, url):
    sfa = ctx.ServiceManager.createInstanceWithContext("com.sun.star.ucb.SimpleFileAccess", ctx)
    stream = sfa.openFileRead(url)
    try:
        storage = zip_storage(ctx, stream, READ)
        sigs = signer_service(ctx, odf_version(ctx, url))
        out = []
        for info in sigs.verifyDocumentContentSignatures(storage, None):
            out.append({
                "valid": bool(info.SignatureIsValid),
                "certificateStatus": int(info.CertificateStatus),
                "partial": bool(info.PartialDocumentSignature),
                "signer": b64(der(info.Signer)) if info.Signer else "",
            })
        storage.dispose()
        return out
    finally:
        stream.closeInput()


def cmd_login(pipe, token):
    pin = sys.stdin.readline().rstrip("\n")
    ctx = connect(pipe)
    env = security_environment(ctx)
    before, before_err = personal(env)
    # Load nsslogin.py into soffice.bin as a UNO component: its execute()
    # runs in soffice's process, on soffice's NSS.
    loader = ctx.ServiceManager.createInstanceWithContext("com.sun.star.loader.Python", ctx)
    factory = loader.activate("org.csctoken.test.NSSLogin", "",
                              unohelper.systemPathToFileUrl(os.path.join(HERE, "nsslogin.py")), None)
    job = factory.createInstanceWithContext(ctx)
    report = job.execute((prop(NamedValue, "Token", token), prop(NamedValue, "PIN", pin)))
    after, after_err = personal(env)
    return {"before": before, "beforeError": before_err, "login": report, "after": after, "afterError": after_err}


def cmd_certs(pipe):
    ctx = connect(pipe)
    certs, err = personal(security_environment(ctx))
    return {"certs": certs, "error": err}


def personal_cert(ctx, cert_file):
    want = open(cert_file, "rb").read()
    for c in security_environment(ctx).getPersonalCertificates():
        if der(c) == want:
            return c
    raise SystemExit("the certificate is not among LibreOffice's personal certificates")


def new_document(ctx, text):
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    doc = desktop.loadComponentFromURL("private:factory/swriter", "_blank", 0,
                                       (prop(PropertyValue, "Hidden", True),))
    doc.getText().setString(text)
    return doc


def cmd_pdf(pipe, cert_file, out):
    ctx = connect(pipe)
    cert = personal_cert(ctx, cert_file)
    doc = new_document(ctx, "A PDF signed through libcsctoken.so by LibreOffice (%s)" % os.path.basename(out))
    # No SignaturePassword: the token is logged in already (or needs no
    # login). Headless, SignaturePassword does not log the token in: the
    # export fails with an I/O error, and no C_Login reaches the module.
    data = uno.Any("[]com.sun.star.beans.PropertyValue", (
        prop(PropertyValue, "SignPDF", True),
        prop(PropertyValue, "SignatureCertificate", cert),
        prop(PropertyValue, "SignatureReason", "csctoken test"),
    ))
    start = time.monotonic()
    uno.invoke(doc, "storeToURL", (unohelper.systemPathToFileUrl(out), (
        prop(PropertyValue, "FilterName", "writer_pdf_Export"),
        prop(PropertyValue, "FilterData", data))))
    took = time.monotonic() - start
    doc.close(True)
    return {"exportSeconds": round(took, 3)}


def cmd_sign(pipe, cert_file, out):
    ctx = connect(pipe)
    smgr = ctx.ServiceManager
    cert = personal_cert(ctx, cert_file)
    url = unohelper.systemPathToFileUrl(out)
    doc = new_document(ctx, "A contract signed through libcsctoken.so by LibreOffice (%s)" % os.path.basename(out))
    doc.storeToURL(url, (prop(PropertyValue, "FilterName", "writer8"),))
    doc.close(True)
    version = odf_version(ctx, url)

    # As LibreOffice's own DocumentSigner (sfx2) signs a stored ODF file: a
    # read-write ZIP storage of the file, its META-INF, the signature
    # stream, and a second storage of the same stream for the signer.
    sigs = signer_service(ctx, version)
    sfa = smgr.createInstanceWithContext("com.sun.star.ucb.SimpleFileAccess", ctx)
    stream = sfa.openFileReadWrite(url)
    zipstore = zip_storage(ctx, stream, READWRITE)
    metainf = zipstore.openStorageElement("META-INF", READWRITE)
    sigstream = metainf.openStreamElement(sigs.getDocumentContentSignatureDefaultStreamName(), READWRITE)
    storage = zip_storage(ctx, stream, READWRITE)
    start = time.monotonic()
    ok = sigs.signDocumentWithCertificate(cert, storage, sigstream)
    took = time.monotonic() - start
    if ok:
        metainf.commit()
        zipstore.commit()
    for c in (storage, metainf, zipstore):
        c.dispose()
    stream.getOutputStream().closeOutput()
    stream.getInputStream().closeInput()
    if not ok:
        raise SystemExit("signDocumentWithCertificate returned false")
    return {"odfVersion": version, "signSeconds": round(took, 3), "signatures": verify(ctx, url)}


def cmd_verify(pipe, files):
    ctx = connect(pipe)
    security_environment(ctx)
    return {f: verify(ctx, unohelper.systemPathToFileUrl(f)) for f in files}


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "login":
        res = cmd_login(*args)
    elif cmd == "certs":
        res = cmd_certs(*args)
    elif cmd == "sign":
        res = cmd_sign(*args)
    elif cmd == "pdf":
        res = cmd_pdf(*args)
    elif cmd == "verify":
        res = cmd_verify(args[0], args[1:])
    else:
        raise SystemExit("unknown command " + cmd)
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    try:
        main(sys.argv)
    except SystemExit:
        raise
    except Exception as e:
        traceback.print_exc()
        msg = getattr(e, "Message", "")
        sys.exit("%s: %s" % (type(e).__name__, msg or e))

// Package objects is the module's credential/object model: pure code, no
// I/O and no locks beyond the memos of an object's attributes and a key's
// checked signature shapes.
//
// From the credentials a Service lists it builds the keys (KeyInfo: the
// certificate's fields, public key, the mechanisms the service's
// algorithms allow) and the PKCS#11 objects (certificates, public and
// private keys, CA certificates, the profile object) with their attributes,
// built lazily; it answers C_GetAttributeValue templates and matches
// C_FindObjectsInit templates. It holds the on-disk cache format
// (EncodeCache, DecodeCache), the hash and mechanism tables, DigestInfo and
// RSA-PSS parameter encoding, and local signature verification.
//
// Package module, the stateful core (slots, sessions, login, signing),
// owns handles, locking and files, and uses this package for the rest.
package objects

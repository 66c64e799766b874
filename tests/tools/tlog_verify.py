#!/usr/bin/python3
"""Independent verifier for shredd's transparency log.

Written only from the specifications -- c2sp.org/signed-note,
c2sp.org/tlog-checkpoint, c2sp.org/tlog-proof@v1 and RFC 9162 sections
2.1.3.2 (inclusion) and 2.1.4.2 (consistency) -- with nothing but the Python
standard library and PyNaCl, so that a bug in shredd's C++ cannot hide a bug
in what shredd signs (DESIGN.md invariant 5). Same command line as
tlog_verify.go:

  tlog_verify.py checkpoint  VKEY_FILE CHECKPOINT_FILE
  tlog_verify.py inclusion   VKEY_FILE ENTRY_FILE TLOG_PROOF_FILE
  tlog_verify.py consistency VKEY_FILE OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE

VKEY_FILE: a signed-note verifier key "<name>+<8 hex key id>+<base64(0x01 ||
key)>" whose name is the log's origin. PROOF_FILE: base64 hashes, one a line.
Exit status: 0 and "OK ..." if the check passes, 1 and the reason otherwise.
"""

import base64
import binascii
import hashlib
import sys

import nacl.exceptions
import nacl.signing

EM_DASH = "\u2014"


class Invalid(Exception):
    pass


def b64(text, what):
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid("%s: bad base64 (%s)" % (what, e))
    if base64.b64encode(raw).decode() != text:
        raise Invalid("%s: non-canonical base64" % what)
    return raw


def parse_vkey(text):
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Invalid("verifier key is not name+hash+key")
    name, hash_hex, key_b64 = parts
    typed = b64(key_b64, "verifier key")
    if len(typed) != 33 or typed[0] != 0x01:
        raise Invalid("verifier key is not an Ed25519 (type 0x01) key")
    key = typed[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4]
    if key_id.hex() != hash_hex.lower():
        raise Invalid("verifier key hash %s does not match (computed %s)" % (hash_hex, key_id.hex()))
    return name, key_id, key


def open_note(msg, vkey):
    """Returns the note text if a signature by vkey verifies (c2sp.org/signed-note)."""
    name, key_id, key = vkey
    try:
        text = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("note is not UTF-8")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise Invalid("note has control characters")
    if not text.endswith("\n"):
        raise Invalid("note does not end in a newline")
    cut = text.rfind("\n\n")
    if cut < 0:
        raise Invalid("note has no blank line before its signatures")
    body, sigs = text[:cut + 1], text[cut + 2:]
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith(EM_DASH + " "):
            raise Invalid("malformed signature line %r" % line)
        sig_name, _, sig_b64 = line[2:].partition(" ")
        raw = b64(sig_b64, "signature")
        if len(raw) < 5:
            raise Invalid("signature too short")
        if sig_name != name or raw[:4] != key_id:
            continue  # someone else's signature: ignored
        try:
            nacl.signing.VerifyKey(key).verify(body.encode(), raw[4:])
        except (nacl.exceptions.BadSignatureError, ValueError):
            raise Invalid("signature by %s does not verify" % name)
        verified = True
    if not verified:
        raise Invalid("no signature by %s+%s" % (name, key_id.hex()))
    return body


def parse_checkpoint(msg, vkey):
    body = open_note(msg, vkey)
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(not l for l in lines):
        raise Invalid("checkpoint needs origin, size and root lines")
    origin, size_s, root_s = lines[:3]
    if origin != vkey[0]:
        raise Invalid("checkpoint origin %r is not the key name %r" % (origin, vkey[0]))
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise Invalid("bad tree size %r" % size_s)
    root = b64(root_s, "root hash")
    if len(root) != 32:
        raise Invalid("root hash is not 32 bytes")
    return origin, int(size_s), root


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_root(index, size, leaf, path):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        raise Invalid("index %d is not below tree size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Invalid("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Invalid("inclusion proof too short")
    return r


def check_consistency(m, n, root_m, root_n, proof):
    """RFC 9162 2.1.4.2."""
    if m > n:
        raise Invalid("old size %d > new size %d" % (m, n))
    if m == 0 or m == n:
        if proof:
            raise Invalid("proof must be empty")
        if m == n and root_m != root_n:
            raise Invalid("same size, different roots")
        return
    if not proof:
        raise Invalid("empty consistency proof")
    path = ([root_m] if m & (m - 1) == 0 else []) + list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Invalid("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Invalid("consistency proof too short")
    if fr != root_m or sr != root_n:
        raise Invalid("consistency proof does not lead to both roots")


def parse_tlog_proof(text):
    """c2sp.org/tlog-proof@v1 -> (index, path, checkpoint bytes)."""
    head, sep, cp = text.partition(b"\n\n")
    if not sep or not cp:
        raise Invalid("tlog-proof is truncated (no checkpoint)")
    lines = head.decode().split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise Invalid("not a tlog-proof")
    lines = lines[1:]
    if lines and lines[0].startswith("extra "):
        lines = lines[1:]
    if not lines or not lines[0].startswith("index "):
        raise Invalid("no index line")
    index_s = lines[0][6:]
    if not index_s.isdigit() or (index_s != "0" and index_s.startswith("0")):
        raise Invalid("bad index %r" % index_s)
    path = [b64(l, "path hash") for l in lines[1:]]
    if any(len(p) != 32 for p in path):
        raise Invalid("path hash is not 32 bytes")
    return int(index_s), path, cp


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main(argv):
    if len(argv) < 2:
        raise Invalid(__doc__)
    cmd = argv[1]
    if cmd == "checkpoint" and len(argv) == 4:
        vkey = parse_vkey(read(argv[2]).decode())
        origin, size, root = parse_checkpoint(read(argv[3]), vkey)
        print("OK checkpoint %s size %d root %s" % (origin, size, base64.b64encode(root).decode()))
    elif cmd == "inclusion" and len(argv) == 5:
        vkey = parse_vkey(read(argv[2]).decode())
        entry = read(argv[3])
        index, path, cp = parse_tlog_proof(read(argv[4]))
        _, size, root = parse_checkpoint(cp, vkey)
        if inclusion_root(index, size, leaf_hash(entry), path) != root:
            raise Invalid("inclusion proof for index %d does not lead to the checkpoint root" % index)
        print("OK inclusion index %d size %d" % (index, size))
    elif cmd == "consistency" and len(argv) == 6:
        vkey = parse_vkey(read(argv[2]).decode())
        _, m, root_m = parse_checkpoint(read(argv[3]), vkey)
        _, n, root_n = parse_checkpoint(read(argv[4]), vkey)
        proof = [b64(l, "proof hash") for l in read(argv[5]).decode().split()]
        check_consistency(m, n, root_m, root_n, proof)
        print("OK consistency %d -> %d" % (m, n))
    else:
        raise Invalid("usage: see tlog_verify.py --help")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Invalid as e:
        print("tlog_verify (Python): %s" % e, file=sys.stderr)
        sys.exit(1)

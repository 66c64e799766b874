#!/usr/bin/python3
"""Independent verifier for shredd deletion certificates.

Written only from docs/FORMATS.md, with nothing but the Python standard
library and PyNaCl, so that a bug in shredd's C++ verifier cannot hide a bug
in shredd's certificates (DESIGN.md invariant 5).

usage: verify_cert.py CERT --pubkey KEYFILE [--manifest FILE]
                           [--receipt FILE [--item sha256:HEX]]

KEYFILE holds the Ed25519 public key as an SPKI PEM, a C2SP signed-note
verifier key (name+hash+base64), 64 hex characters, or 32 raw bytes.
Exit status: 0 if every requested check passes, 1 if one fails (the reason
is printed), 2 on usage errors.
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from fractions import Fraction

import nacl.exceptions
import nacl.signing

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://shredd.dev/attestations/deletion/v1"
SUBJECT_PREFIX = "shredd-deletion:"
LEAF_FORMAT = "shredd-item-v1"
KINDS = ("photo", "model")
SPKI_ED25519_PREFIX = bytes.fromhex("302a300506032b6570032100")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class Invalid(Exception):
    """A check failed; the message says which."""


def check(cond, message):
    if not cond:
        raise Invalid(message)


def b64decode(text, what):
    check(isinstance(text, str), f"{what} is not a string")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise Invalid(f"{what} is not valid base64: {e}")
    check(base64.b64encode(raw).decode() == text,
          f"{what} is not canonical padded base64")
    return raw


def time_value(t):
    """(whole seconds as text, fraction as a number) of an RFC 3339 UTC
    timestamp already matched by RFC3339_UTC; orders like time."""
    frac = t[19:-1].lstrip(".")
    return (t[:19], Fraction(int(frac or "0"), 10 ** len(frac)))


def is_uint(v):
    return type(v) is int and v >= 0  # bool is not an int here


# --- keys -------------------------------------------------------------------

def load_public_key(path):
    data = open(path, "rb").read()
    if b"-----BEGIN PUBLIC KEY-----" in data:
        lines = data.decode("ascii").strip().splitlines()
        begin = lines.index("-----BEGIN PUBLIC KEY-----")
        end = lines.index("-----END PUBLIC KEY-----")
        der = b64decode("".join(lines[begin + 1:end]), "PEM body")
        check(len(der) == 44 and der.startswith(SPKI_ED25519_PREFIX),
              "PEM key is not an Ed25519 SubjectPublicKeyInfo")
        return der[12:]
    if len(data) == 32:
        return data
    text = data.decode("ascii").strip()
    if re.fullmatch(r"[0-9a-f]{64}", text):
        return bytes.fromhex(text)
    parts = text.split("+", 2)
    check(len(parts) == 3, "public key file is neither PEM, vkey, hex nor raw")
    name, hash_hex, key_b64 = parts
    check(name and re.fullmatch(r"[0-9a-fA-F]{8}", hash_hex),
          "malformed verifier key")
    typed = b64decode(key_b64, "verifier key")
    check(len(typed) == 33 and typed[0] == 1, "verifier key is not Ed25519")
    want = hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4]
    check(want.hex() == hash_hex.lower(), "verifier key hash does not match")
    return typed[1:]


def key_id(pub):
    return "shredd:" + hashlib.sha256(pub).hexdigest()


# --- Merkle trees (RFC 9162 section 2.1, recursive definitions) --------------

def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def root_from_path(index, size, leaf, path):
    """Root of a tree of `size` leaves given leaf `index` and its audit path
    (ordered leaf to root), following the tree's recursive split."""
    if size == 1:
        check(not path, "inclusion path is too long")
        return leaf
    check(path, "inclusion path is too short")
    k = split(size)
    if index < k:
        return node_hash(root_from_path(index, k, leaf, path[:-1]), path[-1])
    return node_hash(path[-1], root_from_path(index - k, size - k, leaf,
                                              path[:-1]))


def item_leaf(item, where):
    check(isinstance(item, dict), f"{where} is not an object")
    kind, digest = item.get("kind"), item.get("digest")
    size, salt = item.get("size"), item.get("salt")
    check(kind in KINDS, f"{where}.kind {kind!r} is not photo or model")
    check(isinstance(digest, str) and DIGEST.match(digest),
          f"{where}.digest is not sha256:<64 lowercase hex>")
    check(is_uint(size), f"{where}.size is not a non-negative integer")
    check(isinstance(salt, str) and HEX64.match(salt),
          f"{where}.salt is not 64 lowercase hex")
    text = f"{LEAF_FORMAT} {kind} {digest} {size} {salt}"
    return leaf_hash(text.encode("ascii"))


# --- certificate --------------------------------------------------------------

def verify_certificate(cert_bytes, pub):
    try:
        env = json.loads(cert_bytes)
    except ValueError as e:
        raise Invalid(f"certificate is not JSON: {e}")
    check(isinstance(env, dict), "envelope is not a JSON object")
    ptype = env.get("payloadType")
    check(ptype == PAYLOAD_TYPE,
          f"payloadType is {ptype!r}, expected {PAYLOAD_TYPE!r}")
    payload = b64decode(env.get("payload"), "payload")
    sigs = env.get("signatures")
    check(isinstance(sigs, list) and sigs, "envelope has no signatures")

    pt = ptype.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(pt), pt, len(payload), payload)
    verifier = nacl.signing.VerifyKey(pub)
    want_id = key_id(pub)
    tried = 0
    for i, s in enumerate(sigs):
        check(isinstance(s, dict), f"signatures[{i}] is not an object")
        kid = s.get("keyid", "")
        if kid and kid != want_id:
            continue
        tried += 1
        sig = b64decode(s.get("sig"), f"signatures[{i}].sig")
        try:
            verifier.verify(pae, sig)
            break
        except (nacl.exceptions.BadSignatureError, ValueError):
            continue
    else:
        raise Invalid("no signature by key " + want_id if tried == 0 else
                      "signature does not verify under the given key")

    try:
        st = json.loads(payload)
    except ValueError as e:
        raise Invalid(f"payload is not JSON: {e}")
    check(isinstance(st, dict), "statement is not an object")
    check(st.get("_type") == STATEMENT_TYPE, "wrong statement _type")
    check(st.get("predicateType") == PREDICATE_TYPE, "wrong predicateType")
    pred = st.get("predicate")
    check(isinstance(pred, dict), "predicate is not an object")
    subjects = st.get("subject")
    check(isinstance(subjects, list) and len(subjects) == 1,
          "statement must have exactly one subject")
    cert_id = pred.get("certificateId")
    check(isinstance(cert_id, str) and cert_id, "no certificateId")
    check(subjects[0].get("name") == SUBJECT_PREFIX + cert_id,
          "subject name does not match certificateId")
    items = pred.get("items")
    check(isinstance(items, dict), "predicate.items is not an object")
    root = items.get("merkleRoot")
    check(isinstance(root, str) and HEX64.match(root),
          "items.merkleRoot is not 64 lowercase hex")
    check((subjects[0].get("digest") or {}).get("sha256") == root,
          "subject digest does not equal items.merkleRoot")
    check(items.get("leafFormat") == LEAF_FORMAT, "unknown items.leafFormat")
    count, by_kind = items.get("count"), items.get("byKind")
    check(is_uint(count), "items.count is not a non-negative integer")
    check(isinstance(by_kind, dict) and all(map(is_uint, by_kind.values())),
          "items.byKind is not an object of counts")
    check(sum(by_kind.values()) == count,
          f"items.count {count} != sum of byKind {sum(by_kind.values())}")
    if count == 0:
        check(root == hashlib.sha256(b"").hexdigest(),
              "no items but the root is not the empty-tree root")
    for name in ("request", "method", "destruction", "times", "shredd"):
        check(isinstance(pred.get(name), dict), f"predicate.{name} missing")
    check(isinstance(pred["request"].get("id"), str), "request.id missing")
    for name in ("requested", "destroyed", "issued"):
        t = pred["times"].get(name)
        check(isinstance(t, str) and RFC3339_UTC.match(t),
              f"times.{name} is not RFC 3339 UTC")
    check(time_value(pred["times"]["issued"]) >=
          time_value(pred["times"]["destroyed"]),
          "times.issued is before times.destroyed")
    return {"id": cert_id, "root": root, "count": count, "byKind": by_kind,
            "predicate": pred}


def check_header(doc, cert, what, type_):
    check(isinstance(doc, dict), f"{what} is not a JSON object")
    check(doc.get("type") == type_, f"{what} type is not {type_}")
    check(doc.get("certificateId") == cert["id"],
          f"{what} is for another certificate")
    check(doc.get("merkleRoot") == cert["root"],
          f"{what} Merkle root differs from the certificate's")


def verify_manifest(manifest_bytes, cert):
    doc = json.loads(manifest_bytes)
    check_header(doc, cert, "manifest", "shredd-manifest-v1")
    items = doc.get("items")
    check(isinstance(items, list), "manifest has no items list")
    leaves = [item_leaf(it, f"items[{i}]") for i, it in enumerate(items)]
    for i in range(1, len(leaves)):
        check(leaves[i - 1] < leaves[i], f"items[{i}] is out of tree order")
    digests = [it["digest"] for it in items]
    check(len(set(digests)) == len(digests), "an item digest repeats")
    check(len(items) == cert["count"],
          f"manifest has {len(items)} items, certificate {cert['count']}")
    for kind in set(KINDS) | set(cert["byKind"]):
        n = sum(1 for it in items if it["kind"] == kind)
        check(n == cert["byKind"].get(kind, 0),
              f"manifest has {n} items of kind {kind}, certificate "
              f"{cert['byKind'].get(kind, 0)}")
    root = mth(leaves).hex()
    check(root == cert["root"], f"manifest Merkle root {root} does not match "
          f"certificate root {cert['root']}")


def verify_receipt(receipt_bytes, cert, want_digest):
    doc = json.loads(receipt_bytes)
    check_header(doc, cert, "receipt", "shredd-receipt-v1")
    size, index = doc.get("treeSize"), doc.get("leafIndex")
    check(is_uint(size) and size == cert["count"],
          "receipt treeSize != certificate count")
    check(is_uint(index) and index < size, "receipt leafIndex out of range")
    leaf = item_leaf(doc.get("item"), "receipt.item")
    if want_digest is not None:
        check(doc["item"]["digest"] == want_digest,
              f"receipt is for {doc['item']['digest']}, not {want_digest}")
    path = doc.get("inclusionPath")
    check(isinstance(path, list) and
          all(isinstance(h, str) and HEX64.match(h) for h in path),
          "inclusionPath is not a list of 64-hex hashes")
    root = root_from_path(index, size, leaf, [bytes.fromhex(h) for h in path])
    check(root.hex() == cert["root"], "receipt inclusion path leads to "
          f"{root.hex()}, not the certificate root {cert['root']}")
    return doc["item"]["digest"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cert")
    ap.add_argument("--pubkey", required=True)
    ap.add_argument("--manifest")
    ap.add_argument("--receipt")
    ap.add_argument("--item", help="digest the receipt must be for")
    args = ap.parse_args()
    if args.item and not args.receipt:
        ap.error("--item needs --receipt")
    try:
        pub = load_public_key(args.pubkey)
        cert = verify_certificate(open(args.cert, "rb").read(), pub)
        print(f"OK certificate {cert['id']}: {cert['count']} items "
              f"{json.dumps(cert['byKind'], sort_keys=True)}, "
              f"root {cert['root']}")
        if args.manifest:
            verify_manifest(open(args.manifest, "rb").read(), cert)
            print("OK manifest matches the certificate root")
        if args.receipt:
            digest = verify_receipt(open(args.receipt, "rb").read(), cert,
                                    args.item)
            print(f"OK receipt proves {digest} is in the certificate")
    except (Invalid, ValueError, KeyError, TypeError, AttributeError,
            OSError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

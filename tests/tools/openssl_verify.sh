#!/bin/sh
# Verify a shredd deletion certificate with only openssl and POSIX tools.
# Usage: openssl_verify.sh CERT PUBKEY_PEM
#
# A certificate is a DSSE envelope, compact JSON as shredd writes it:
#   {"payloadType":"...","payload":"<base64>","signatures":[{"keyid":"...","sig":"<base64>"}]}
# The Ed25519 signature covers PAE, not the JSON:
#   "DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload
# with lengths in bytes as ASCII decimal and payload base64-decoded.
# Exits 0 iff the (first) signature verifies; then prints the signed
# in-toto statement.
set -eu
cert=$1 pub=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Pull the fields out of the envelope.
envelope=$(tr -d '\n' < "$cert")
get() { printf '%s' "$envelope" | sed -n "s/$1/\1/p"; }
type=$(get '.*"payloadType":"\([^"]*\)".*')
get '.*"payload":"\([^"]*\)".*' | base64 -d > "$work/payload"
get '.*"signatures":\[{[^}]*"sig":"\([^"]*\)".*' | base64 -d > "$work/sig"
if [ "$type" != "application/vnd.in-toto+json" ]; then
  echo "not a shredd certificate: payloadType is '$type'" >&2
  exit 1
fi

# 2. Rebuild the exact bytes that were signed (PAE).
{
  printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(wc -c < "$work/payload")"
  cat "$work/payload"
} > "$work/pae"

# 3. Verify the Ed25519 signature over them.
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin \
  -in "$work/pae" -sigfile "$work/sig" >&2

# 4. Show what was signed. Its subject digest is the Merkle root over the
#    shredded items; predicate.items.merkleRoot must be the same value.
cat "$work/payload"
echo

// Verifies a shredd certificate's Sigstore bundle (CERT.sigstore.json) with
// sigstore-js (@sigstore/verify, pinned in package-lock.json) against the
// vendor's SPKI PEM key, as a regulator's tooling would:
//
//   node tests/js/verify_sigstore_bundle.js CERT.sigstore.json shredd.pub.pem
//
// The bundle carries no Rekor entry and no timestamp (shredd's own log is
// proven by the tlog-proof), so the thresholds for those are 0; the key is
// found by the bundle's publicKey hint, which must be the key's shredd KeyId
// ("shredd:" + hex SHA-256 of the raw key). Prints "OK <payloadType>" and
// exits 0, or prints the error and exits 1. Used by
// tests/integration/test_sigstore_bundle.py.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main([bundlePath, pemPath]) {
  if (!bundlePath || !pemPath) {
    console.error('usage: verify_sigstore_bundle.js BUNDLE PUBKEY_PEM');
    return 2;
  }
  const key = crypto.createPublicKey(fs.readFileSync(pemPath));
  const raw = key.export({ format: 'der', type: 'spki' }).subarray(-32);
  const keyId = 'shredd:' + crypto.createHash('sha256').update(raw).digest('hex');
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath, 'utf8')));
  const trust = toTrustMaterial(
    { mediaType: '', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] },
    (hint) => {
      if (hint !== keyId) throw new Error(`bundle hint ${hint} is not the given key ${keyId}`);
      return { publicKey: key, validFor: () => true };
    });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log('OK ' + bundle.content.dsseEnvelope.payloadType);
  return 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error('FAILED: ' + (e && e.message ? e.message : e) + (e && e.code ? ` (${e.code})` : ''));
  process.exitCode = 1;
}

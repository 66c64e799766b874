// shredd verification page, part 2 of 3: the checks of `shredctl verify`
// and `shredctl log verify` (formats/): keys, the DSSE envelope, deletion
// certificates, Merkle trees, receipts, signed notes, checkpoints and
// tlog-proofs. No DOM. docs/FORMATS.md and docs/LOG.md are the byte-exact
// specs.
//
// Cryptography comes only from the vendored libraries (`noble`, defined by
// the build before this script): Ed25519 from @noble/ed25519 with SHA-512
// and SHA-256 from @noble/hashes. Nothing here is a cryptographic primitive;
// this file parses and compares. It uses verify_encoding.js
// (`verifyEncoding`) and returns its names as `verifyFormats` for verify.js;
// client/web/build_page.cmake puts the files in that order.
const verifyFormats = (() => {
  'use strict';

  const {
    Failure, fail, UINT64_MAX, utf8, hex, short, concat, equalBytes, hexDecode,
    parseHash, b64encode, b64decode, decodeUtf8, shown, JObject, JNumber, typeName,
    parseStrictJson, getString, getUint, getTyped, getHash, expectString
  } = verifyEncoding;

  const { sha256, sha512 } = noble.sha2;
  const ed = noble.ed25519;
  ed.hashes.sha512 = sha512;

  // ------------------------------------------------------------ constants
  const PAYLOAD_TYPE = 'application/vnd.in-toto+json';
  const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
  const PREDICATE_TYPE = 'https://shredd.dev/attestations/deletion/v1';
  const SUBJECT_PREFIX = 'shredd-deletion:';
  const LEAF_FORMAT = 'shredd-item-v1';
  const RECEIPT_TYPE = 'shredd-receipt-v1';
  const BUNDLE_TYPE = 'shredd-receipt-bundle-v1';
  const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
  const MAX_NOTE_BYTES = 1 << 20;
  const MAX_NOTE_SIGNATURES = 100;
  const MAX_PROOF_HASHES = 64;
  const INT63_MAX = (1n << 63n) - 1n;
  const EM_DASH_SPACE = '\u2014 ';

  // ------------------------------------------------------------ keys
  const keyId = (key) => 'shredd:' + hex(sha256(key));
  function noteKeyHash(name, key) {
    const h = sha256(concat(utf8(name), Uint8Array.of(0x0a, 0x01), key));
    return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
  }
  const hex8 = (n) => n.toString(16).padStart(8, '0');
  const SPKI_PREFIX = hexDecode('302a300506032b6570032100');

  // formats/keys.cc ParsePublicKey: an SPKI PEM or a signed-note verifier key.
  function parsePublicKey(bytes) {
    const text = new TextDecoder('latin1').decode(bytes);
    if (text.includes('-----BEGIN')) {
      const m = /-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]*)-----END PUBLIC KEY-----/.exec(text);
      if (!m) fail('no PEM PUBLIC KEY (SubjectPublicKeyInfo) block could be read');
      let der;
      try {
        der = b64decode(m[1].replace(/[\r\n]/g, ''));
      } catch (e) {
        fail(`no PEM PUBLIC KEY (SubjectPublicKeyInfo) block could be read: ${e.message}`);
      }
      if (der.length !== 44 || !equalBytes(der.subarray(0, 12), SPKI_PREFIX)) fail('public key is not an Ed25519 SubjectPublicKeyInfo (RFC 8410)');
      return { key: der.slice(12), spelling: 'SPKI PEM' };
    }
    const vkey = text.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
    try {
      return parseNoteVerifierKey(vkey);
    } catch (e) {
      return fail(`public key is neither an SPKI PEM nor a valid signed-note verifier key: ${e.message}`);
    }
  }

  function parseNoteVerifierKey(vkey) {
    const p1 = vkey.indexOf('+');
    const p2 = p1 < 0 ? -1 : vkey.indexOf('+', p1 + 1);
    if (p2 < 0) fail('verifier key must be <name>+<hash>+<base64 key>');
    const name = vkey.slice(0, p1);
    const hashHex = vkey.slice(p1 + 1, p2);
    if (name.length === 0 || [...name].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) >= 0x7f || c === '+')) {
      fail(`invalid key name "${shown(name)}": must be non-empty printable ASCII without '+'`);
    }
    if (!/^[0-9a-fA-F]{8}$/.test(hashHex)) fail(`verifier key hash "${shown(hashHex)}" is not 8 hex digits`);
    let typed;
    try {
      typed = b64decode(vkey.slice(p2 + 1));
    } catch (e) {
      fail(`verifier key material: ${e.message}`);
    }
    if (typed.length !== 33 || typed[0] !== 0x01) fail('verifier key is not an Ed25519 key (want 0x01 followed by 32 bytes)');
    const key = typed.slice(1);
    const want = parseInt(hashHex, 16) >>> 0;
    const got = noteKeyHash(name, key);
    if (got !== want) fail(`verifier key hash ${hex8(want)} does not match name and key (computed ${hex8(got)})`);
    return { key, name, keyHash: got, spelling: 'signed-note verifier key' };
  }

  function verifyEd25519(key, message, signature) {
    if (signature.length !== 64) return false;
    try {
      // RFC 8032 / FIPS 186-5 strict, as libsodium (not ZIP-215).
      return ed.verify(signature, message, key, { zip215: false }) === true;
    } catch (e) {
      return false;
    }
  }

  // ------------------------------------------------------------ envelope
  const stringMember = (obj, name, where) => {
    if (!obj.has(name)) fail(`${where} has no "${name}"`);
    const v = obj.get(name);
    if (typeof v !== 'string') fail(`${where} member "${name}" is a ${typeName(v)}, not a string`);
    return v;
  };
  const base64Member = (obj, name, where) => {
    const text = stringMember(obj, name, where);
    try {
      return b64decode(text);
    } catch (e) {
      return fail(`${where} member "${name}": ${e.message}`);
    }
  };

  // formats/dsse.cc EnvelopeFromJson: the envelope in a document read strictly.
  function envelopeFromDoc(doc) {
    if (!(doc instanceof JObject)) fail('envelope is not a JSON object');
    const env = { doc, signatures: [] };
    env.payloadType = stringMember(doc, 'payloadType', 'envelope');
    env.payload = base64Member(doc, 'payload', 'envelope');
    const sigs = doc.get('signatures');
    if (!Array.isArray(sigs)) fail('envelope has no "signatures" array');
    if (sigs.length === 0) fail('envelope has no signatures');
    sigs.forEach((s, i) => {
      const where = `signatures[${i}]`;
      if (!(s instanceof JObject)) fail(`${where} is not a JSON object`);
      const keyid = s.has('keyid') ? stringMember(s, 'keyid', where) : '';
      env.signatures.push({ keyid, sig: base64Member(s, 'sig', where) });
    });
    return env;
  }

  // The envelope as formats/dsse.cc SerializeEnvelope writes it, as a
  // document: what shredctl verifies and logs for a Sigstore bundle.
  function serializedDoc(env) {
    const obj = (entries) => {
      const o = new JObject();
      for (const [k, v] of entries) o.map.set(k, v);
      return o;
    };
    const sigs = env.signatures.map((s) => obj([...(s.keyid !== '' ? [['keyid', s.keyid]] : []), ['sig', b64encode(s.sig)]]));
    return obj([['payloadType', env.payloadType], ['payload', b64encode(env.payload)], ['signatures', sigs]]);
  }

  // client/sigstore_bundle.cc EnvelopeFromCertificateFile: a Sigstore
  // bundle (any v0.x media type) stands for the DSSE envelope it carries,
  // as `shredctl verify` reads it. One that is also an envelope is refused
  // by both, or each would show another certificate.
  const SIGSTORE_BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle';
  function envelopeFromBundle(doc) {
    for (const member of ['payloadType', 'payload', 'signatures']) {
      if (doc.has(member)) fail(`the file is both a Sigstore bundle and a DSSE envelope (it has "mediaType" and "${member}"): refused, as two readers would see two certificates`);
    }
    const dsse = doc.get('dsseEnvelope');
    if (!(dsse instanceof JObject)) fail('the Sigstore bundle carries no "dsseEnvelope" (a message signature is not a shredd certificate)');
    let env;
    try {
      env = envelopeFromDoc(dsse);
    } catch (e) {
      if (e instanceof Failure) fail(`the Sigstore bundle's dsseEnvelope: ${e.message}`);
      throw e;
    }
    env.doc = serializedDoc(env);
    env.sigstoreBundle = true;
    return env;
  }

  // formats/dsse.cc ParseEnvelope, or the envelope a Sigstore bundle carries.
  function parseEnvelope(bytes) {
    const doc = parseStrictJson(bytes, 'envelope');
    const media = doc instanceof JObject ? doc.get('mediaType') : undefined;
    if (typeof media === 'string' && media.startsWith(SIGSTORE_BUNDLE_MEDIA_TYPE)) return envelopeFromBundle(doc);
    return envelopeFromDoc(doc);
  }

  // The certificate's log entry: its canonical envelope (docs/FORMATS.md,
  // "Canonical envelope"). Returns the bytes or throws why there are none.
  function canonicalEnvelope(doc) {
    const allowed = ['payloadType', 'payload', 'signatures'];
    for (const k of doc.keys()) {
      if (!allowed.includes(k)) fail(`not a shredd certificate envelope: it has a member "${shown(k)}"`);
    }
    for (const k of allowed) if (!doc.has(k)) fail(`not a shredd certificate envelope: it has no "${k}"`);
    const plain = (s, where) => {
      if (typeof s !== 'string') fail(`not a shredd certificate envelope: ${where} is not a string`);
      for (const c of s) {
        const u = c.codePointAt(0);
        if (u < 0x20 || u > 0x7e || c === '"' || c === '\\') fail(`${where} has a character outside printable ASCII (or a quote or backslash): no canonical form`);
      }
      return s;
    };
    let out = `{"payloadType":"${plain(doc.get('payloadType'), 'payloadType')}","payload":"${plain(doc.get('payload'), 'payload')}","signatures":[`;
    const sigs = doc.get('signatures');
    if (!Array.isArray(sigs)) fail('not a shredd certificate envelope: "signatures" is not an array');
    sigs.forEach((s, i) => {
      const where = `signatures[${i}]`;
      if (!(s instanceof JObject)) fail(`not a shredd certificate envelope: ${where} is not an object`);
      for (const k of s.keys()) if (k !== 'sig' && k !== 'keyid') fail(`not a shredd certificate envelope: ${where} has a member "${shown(k)}"`);
      if (!s.has('sig')) fail(`not a shredd certificate envelope: ${where} has no "sig"`);
      out += (i ? ',' : '') + '{' + (s.has('keyid') ? `"keyid":"${plain(s.get('keyid'), where + '.keyid')}",` : '') + `"sig":"${plain(s.get('sig'), where + '.sig')}"}`;
    });
    return utf8(out + ']}');
  }

  const preAuthEncoding = (type, body) => {
    const t = utf8(type);
    return concat(utf8(`DSSEv1 ${t.length} `), t, utf8(` ${body.length} `), body);
  };

  // ------------------------------------------------------------ certificate
  // "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (formats/certificate.cc IsRfc3339Utc).
  function isRfc3339Utc(s) {
    const digits = (pos, n, lo, hi) => {
      if (pos + n > s.length) return false;
      const part = s.slice(pos, pos + n);
      if (!/^[0-9]+$/.test(part)) return false;
      const v = Number(part);
      return v >= lo && v <= hi;
    };
    if (s.length < 20 || !digits(0, 4, 0, 9999) || s[4] !== '-' || !digits(5, 2, 1, 12) || s[7] !== '-' || !digits(8, 2, 1, 31) || s[10] !== 'T' ||
        !digits(11, 2, 0, 23) || s[13] !== ':' || !digits(14, 2, 0, 59) || s[16] !== ':' || !digits(17, 2, 0, 60)) {
      return false;
    }
    let pos = 19;
    if (s[pos] === '.') {
      ++pos;
      const start = pos;
      while (pos < s.length && s[pos] >= '0' && s[pos] <= '9') ++pos;
      if (pos === start) return false;
    }
    return pos + 1 === s.length && s[pos] === 'Z';
  }
  function timeKey(t) {
    let fraction = t.slice(19, -1);
    if (fraction) fraction = fraction.slice(1);
    return t.slice(0, 19) + fraction + '0'.repeat(Math.max(0, 32 - fraction.length));
  }

  const EMPTY_ROOT = sha256(new Uint8Array(0));

  // formats/certificate.cc VerifyStatement + CheckPredicateShape.
  function verifyStatement(statement) {
    const doc = parseStrictJson(statement, 'certificate payload');
    const st = 'statement';
    if (!(doc instanceof JObject)) fail('statement is not a JSON object');
    expectString(doc, st, '_type', STATEMENT_TYPE);
    expectString(doc, st, 'predicateType', PREDICATE_TYPE);
    const pred = getTyped(doc, st, 'predicate', 'object');
    const subjects = getTyped(doc, st, 'subject', 'array');
    if (subjects.length !== 1) fail(`statement has ${subjects.length} subjects, expected exactly 1`);
    const subject = subjects[0];
    const cert = {};
    cert.id = getString(pred, 'predicate', 'certificateId');
    if (cert.id === '') fail('predicate.certificateId is empty');
    expectString(subject, 'subject[0]', 'name', SUBJECT_PREFIX + cert.id);
    const sd = getTyped(subject, 'subject[0]', 'digest', 'object');
    const subjectRoot = getHash(sd, 'subject[0].digest', 'sha256');
    const items = getTyped(pred, 'predicate', 'items', 'object');
    const it = 'predicate.items';
    const root = getHash(items, it, 'merkleRoot');
    if (!equalBytes(root, subjectRoot)) fail(`subject digest ${short(subjectRoot)} differs from predicate.items.merkleRoot ${short(root)}`);
    cert.root = root;
    expectString(items, it, 'leafFormat', LEAF_FORMAT);
    cert.count = getUint(items, it, 'count');
    const byKind = getTyped(items, it, 'byKind', 'object');
    let sum = 0n;
    cert.byKind = new Map();
    for (const kind of byKind.keys()) {
      const n = byKind.get(kind);
      if (!(n instanceof JNumber) || n.unsigned === null) fail(`predicate.items.byKind.${shown(kind)} is not a non-negative integer`);
      if (n.unsigned > UINT64_MAX - sum) fail('predicate.items.byKind overflows');
      sum += n.unsigned;
      cert.byKind.set(kind, n.unsigned);
    }
    if (sum !== cert.count) fail(`predicate.items.count is ${cert.count} but byKind adds up to ${sum}`);
    if (cert.count === 0n && !equalBytes(root, EMPTY_ROOT)) fail('certificate lists no items but its Merkle root is not the empty-tree root');
    // CheckPredicateShape
    for (const name of ['request', 'method', 'destruction', 'times', 'shredd']) getTyped(pred, 'predicate', name, 'object');
    getString(pred.get('request'), 'predicate.request', 'id');
    const times = {};
    for (const name of ['requested', 'destroyed', 'issued']) {
      const t = getString(pred.get('times'), 'predicate.times', name);
      if (!isRfc3339Utc(t)) fail(`predicate.times.${name} "${shown(t)}" is not an RFC 3339 UTC timestamp`);
      times[name] = t;
    }
    if (timeKey(times.issued) < timeKey(times.destroyed)) fail(`predicate.times.issued ${times.issued} is before predicate.times.destroyed ${times.destroyed}`);
    for (const name of ['derivedModels', 'retainedUnderHold']) {
      if (pred.has(name) && !Array.isArray(pred.get(name))) fail(`predicate.${name} is not an array`);
    }
    if (pred.has('log') && !(pred.get('log') instanceof JObject)) fail('predicate.log is not an object');
    cert.predicate = pred;
    return cert;
  }

  // formats/certificate.cc VerifyCertificate.
  function verifyCertificate(bytes, key) {
    const env = parseEnvelope(bytes);
    if (env.payloadType !== PAYLOAD_TYPE) fail(`envelope payloadType is "${shown(env.payloadType)}", expected "${PAYLOAD_TYPE}"`);
    const kid = keyId(key);
    const pae = preAuthEncoding(env.payloadType, env.payload);
    const others = [];
    let tried = 0;
    let verified = false;
    for (const s of env.signatures) {
      if (s.keyid !== '' && s.keyid !== kid) {
        others.push(shown(s.keyid));
        continue;
      }
      ++tried;
      if (verifyEd25519(key, pae, s.sig)) {
        verified = true;
        break;
      }
    }
    if (!verified) {
      if (tried === 0) fail(`no signature is by the given key ${kid} (signatures are by ${others.join(', ')})`);
      fail(`signature does not verify under the given key ${kid}`);
    }
    const cert = verifyStatement(env.payload);
    cert.keyid = kid;
    cert.envelope = env;
    return cert;
  }

  // ------------------------------------------------------------ Merkle trees
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // RFC 9162 2.1.3.2 (formats/merkle.cc RootFromInclusion); BigInt indices.
  function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) fail(`leaf index ${index} is outside a tree of size ${size}`);
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) fail(`inclusion proof has too many hashes (${proof.length}) for leaf ${index} of a tree of size ${size}`);
      if ((fn & 1n) === 1n || fn === sn) {
        r = nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) fail(`inclusion proof has too few hashes (${proof.length}) for leaf ${index} of a tree of size ${size}`);
    return r;
  }
  function verifyInclusion(index, size, leaf, proof, root) {
    const computed = rootFromInclusion(index, size, leaf, proof);
    if (!equalBytes(computed, root)) fail(`inclusion proof for leaf ${index} of tree size ${size} leads to root ${short(computed)}, expected ${short(root)}`);
  }

  // ------------------------------------------------------------ receipt
  function isValidDigest(d) {
    return d.startsWith('sha256:') && d.length === 71 && /^[0-9a-f]{64}$/.test(d.slice(7));
  }
  // A receipt, or a receipt bundle (client/receipt_bundle.h: the receipts a
  // vendor hands one data subject): with a photo, the bundle's receipt for
  // it; without, every receipt in the bundle is checked.
  function verifyReceipt(cert, bytes, digest) {
    const doc = parseStrictJson(bytes, 'receipt');
    if (!(doc instanceof JObject) || doc.get('type') !== BUNDLE_TYPE) return verifyReceiptDoc(cert, doc, digest);
    const list = getTyped(doc, 'receipt bundle', 'receipts', 'array');
    if (list.length === 0) fail('the receipt bundle holds no receipts');
    const itemDigest = (rc) => (rc instanceof JObject && rc.get('item') instanceof JObject ? rc.get('item').get('digest') : undefined);
    if (digest !== null) {
      const mine = list.filter((rc) => itemDigest(rc) === digest);
      if (mine.length === 0) fail(`the receipt bundle (${list.length} receipts) holds no receipt for ${digest}`);
      if (mine.length > 1) fail(`the receipt bundle lists ${digest} twice`);
      return Object.assign(verifyReceiptDoc(cert, mine[0], digest), { bundle: list.length });
    }
    const items = list.map((rc) => verifyReceiptDoc(cert, rc, null));
    return Object.assign(items[0], { bundle: list.length });
  }
  // formats/certificate.cc VerifyReceipt; `digest` null = the receipt's own item.
  function verifyReceiptDoc(cert, doc, digest) {
    const what = 'receipt';
    if (!(doc instanceof JObject)) fail('receipt is not a JSON object');
    expectString(doc, what, 'type', RECEIPT_TYPE);
    const id = getString(doc, what, 'certificateId');
    if (id !== cert.id) fail(`receipt is for certificate "${shown(id)}", not "${shown(cert.id)}"`);
    const root = getHash(doc, what, 'merkleRoot');
    if (!equalBytes(root, cert.root)) fail(`receipt states Merkle root ${short(root)} but the certificate root is ${short(cert.root)}`);
    const size = getUint(doc, what, 'treeSize');
    if (size !== cert.count) fail(`receipt treeSize ${size} differs from the certificate's item count ${cert.count}`);
    const index = getUint(doc, what, 'leafIndex');
    const itemObj = getTyped(doc, what, 'item', 'object');
    const item = {
      kind: getString(itemObj, 'receipt.item', 'kind'),
      digest: getString(itemObj, 'receipt.item', 'digest'),
      size: getUint(itemObj, 'receipt.item', 'size'),
      salt: getHash(itemObj, 'receipt.item', 'salt'),
    };
    if (item.kind !== 'photo' && item.kind !== 'model') fail(`receipt.item: item kind "${shown(item.kind)}" is neither "photo" nor "model"`);
    if (!isValidDigest(item.digest)) fail(`receipt.item: item digest "${shown(item.digest)}" is not sha256:<64 lowercase hex>`);
    if (digest !== null && item.digest !== digest) fail(`receipt is for item ${item.digest}, not ${digest}`);
    const pathJson = getTyped(doc, what, 'inclusionPath', 'array');
    const path = pathJson.map((h, i) => {
      try {
        if (typeof h !== 'string') fail('not a string');
        return parseHash(h);
      } catch (e) {
        return fail(`receipt.inclusionPath[${i}]: ${e.message}`);
      }
    });
    const leaf = leafHash(utf8(`${LEAF_FORMAT} ${item.kind} ${item.digest} ${item.size} ${hex(item.salt)}`));
    try {
      verifyInclusion(index, size, leaf, path, cert.root);
    } catch (e) {
      fail(`receipt does not prove inclusion: ${e.message}`);
    }
    return item;
  }

  // ------------------------------------------------------------ signed notes, checkpoints, tlog-proofs
  const printable = (s) => shown(s.slice(0, 80)) + (s.length > 80 ? '...' : '');

  // formats/tlog.cc ParseDecimal: no leading zeros, at most 2^63-1.
  function parseDecimal(s, what) {
    if (s === '') fail(`${what} is empty`);
    if (s.length > 1 && s[0] === '0') fail(`${what} "${printable(s)}" has a leading zero`);
    if (!/^[0-9]+$/.test(s)) fail(`${what} "${printable(s)}" is not a decimal number`);
    const v = BigInt(s);
    if (v > INT63_MAX) fail(`${what} "${printable(s)}" is too large`);
    return v;
  }
  function parseB64Hash(s, what) {
    let raw;
    try {
      raw = b64decode(s);
    } catch (e) {
      fail(`${what} is not valid base64 (${e.message}): "${printable(s)}"`);
    }
    if (raw.length !== 32) fail(`${what} decodes to ${raw.length} bytes, not 32`);
    return raw;
  }

  // formats/note.cc ParseNote.
  function parseNote(msg) {
    if (utf8(msg).length > MAX_NOTE_BYTES) fail(`note is larger than ${MAX_NOTE_BYTES} bytes`);
    if (msg === '') fail('note is empty');
    let line = 1;
    for (const c of msg) {
      const u = c.codePointAt(0);
      if (c === '\n') ++line;
      else if (u < 0x20 || u === 0x7f) fail(`note has a control character 0x${u.toString(16).padStart(2, '0')} on line ${line}`);
    }
    if (!msg.endsWith('\n')) fail('note does not end in a newline (truncated?)');
    const blank = msg.lastIndexOf('\n\n');
    if (blank < 0) fail('note has no blank line between the text and its signatures');
    const note = { text: msg.slice(0, blank + 1), signatures: [] };
    let sigs = msg.slice(blank + 2);
    if (sigs === '') fail('note has no signature lines');
    let n = 0;
    while (sigs !== '') {
      ++n;
      const nl = sigs.indexOf('\n');
      const l = sigs.slice(0, nl);
      sigs = sigs.slice(nl + 1);
      if (note.signatures.length >= MAX_NOTE_SIGNATURES) fail(`note has more than ${MAX_NOTE_SIGNATURES} signatures`);
      if (!l.startsWith(EM_DASH_SPACE)) fail(`signature line ${n} does not start with "\u2014 ": "${printable(l)}"`);
      const rest = l.slice(EM_DASH_SPACE.length);
      const sp = rest.indexOf(' ');
      if (sp < 0) fail(`signature line ${n} has no signature after the key name`);
      const name = rest.slice(0, sp);
      if (name === '' || name.includes(' ') || name.includes('+')) fail(`signature line ${n} has an invalid key name "${printable(name)}"`);
      let raw;
      try {
        raw = b64decode(rest.slice(sp + 1));
      } catch (e) {
        fail(`signature line ${n} (${shown(name)}): bad base64: ${e.message}`);
      }
      if (raw.length < 5) fail(`signature line ${n} (${shown(name)}) is too short: ${raw.length} bytes`);
      note.signatures.push({ name, keyHash: ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0, sig: raw.slice(4) });
    }
    return note;
  }

  // formats/note.cc OpenNote.
  function openNote(signedNote, verifier) {
    const note = parseNote(signedNote);
    let verified = false;
    const others = [];
    for (const s of note.signatures) {
      if (s.name !== verifier.name) {
        others.push(shown(s.name));
        continue;
      }
      if (s.keyHash !== verifier.keyHash) {
        others.push(`${shown(s.name)} (key ID ${hex8(s.keyHash)})`);
        continue;
      }
      if (!verifyEd25519(verifier.key, utf8(note.text), s.sig)) {
        const why = s.sig.length !== 64 ? `Ed25519 signature must be 64 bytes, got ${s.sig.length}` : 'signature does not verify under the given key';
        fail(`signature by ${verifier.name} does not verify: the note text was altered or the signature is corrupt (${why})`);
      }
      verified = true;
    }
    if (verified) return note;
    for (const s of note.signatures) {
      if (s.name === verifier.name) {
        fail(`note is signed by a different key named ${verifier.name} (key ID ${hex8(s.keyHash)}, the verifier key has ${hex8(verifier.keyHash)}): wrong verifier key, or a key the log does not hold`);
      }
    }
    return fail(`unknown key name: the note carries no signature by ${verifier.name} (it is signed by ${others.join(', ')}); wrong verifier key or wrong log?`);
  }

  // formats/tlog.cc ParseCheckpointText.
  function parseCheckpointText(text) {
    if (text === '' || !text.endsWith('\n')) fail('checkpoint text does not end in a newline (truncated?)');
    const lines = text.slice(0, -1).split('\n');
    if (lines.length < 3) fail(`checkpoint has ${lines.length} lines; it needs origin, tree size and root hash`);
    lines.forEach((l, i) => {
      if (l === '') fail(`checkpoint line ${i + 1} is empty`);
    });
    return { origin: lines[0], size: parseDecimal(lines[1], 'checkpoint tree size'), root: parseB64Hash(lines[2], 'checkpoint root hash') };
  }

  function verifyCheckpoint(signedNote, verifier) {
    let note;
    try {
      note = openNote(signedNote, verifier);
    } catch (e) {
      fail(`checkpoint: ${e.message}`);
    }
    const c = parseCheckpointText(note.text);
    if (c.origin !== verifier.name) fail(`wrong origin: the checkpoint is for log "${printable(c.origin)}", expected "${verifier.name}"`);
    return c;
  }

  // formats/tlog.cc ParseTlogProof.
  function parseTlogProof(bytes) {
    if (bytes.length > MAX_NOTE_BYTES + 64 * 1024) fail('tlog-proof is too large');
    const text = decodeUtf8(bytes, 'tlog-proof');
    let rest = text;
    let lineNo = 0;
    const next = () => {
      const nl = rest.indexOf('\n');
      if (nl < 0) return null;
      const l = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      ++lineNo;
      return l;
    };
    const truncated = (where) => fail(`tlog-proof is truncated: it ends ${where}`);
    let l = next();
    if (l === null) truncated('before its first line is complete');
    if (l !== TLOG_PROOF_HEADER) fail(`not a tlog-proof: first line is "${printable(l)}", expected "${TLOG_PROOF_HEADER}"`);
    const proof = { path: [] };
    l = next();
    if (l === null) truncated('after the header');
    if (l.startsWith('extra ')) {
      try {
        b64decode(l.slice(6));
      } catch (e) {
        fail(`tlog-proof extra data is not valid base64: ${e.message}`);
      }
      l = next();
      if (l === null) truncated('after the extra line');
    }
    if (!l.startsWith('index ')) fail(`tlog-proof line ${lineNo} should be "index N", is "${printable(l)}"`);
    proof.index = parseDecimal(l.slice(6), 'tlog-proof index');
    for (;;) {
      l = next();
      if (l === null) truncated(`inside the inclusion path, after ${proof.path.length} hashes and before the checkpoint`);
      if (l === '') break;
      if (proof.path.length >= MAX_PROOF_HASHES) fail(`tlog-proof has more than ${MAX_PROOF_HASHES} path hashes`);
      proof.path.push(parseB64Hash(l, `tlog-proof path hash ${proof.path.length + 1}`));
    }
    if (rest === '') truncated('before the checkpoint');
    proof.checkpoint = rest;
    return proof;
  }

  // formats/tlog.cc VerifyTlogProof for the certificate's log entry.
  function verifyTlogProof(bytes, entry, verifier, expectedIndex) {
    const proof = parseTlogProof(bytes);
    const cp = verifyCheckpoint(proof.checkpoint, verifier);
    if (expectedIndex !== null && expectedIndex !== proof.index) fail(`the proof is for index ${proof.index}, not for index ${expectedIndex}`);
    if (proof.index >= cp.size) fail(`the proof is for index ${proof.index} but its checkpoint covers only ${cp.size} entries`);
    try {
      verifyInclusion(proof.index, cp.size, leafHash(entry), proof.path, cp.root);
    } catch (e) {
      fail(`the proof does not prove this entry at index ${proof.index} of the tree of size ${cp.size}: ${e.message}`);
    }
    return { index: proof.index, checkpoint: cp };
  }

  return {
    PREDICATE_TYPE, SUBJECT_PREFIX, keyId, noteKeyHash, parsePublicKey,
    canonicalEnvelope, verifyCertificate, verifyReceipt, parseTlogProof,
    verifyTlogProof
  };
})();

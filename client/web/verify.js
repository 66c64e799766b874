// shredd verification page, part 3 of 3: the page itself (file inputs,
// the order of the checks, the verdict and the summary). docs/VERIFY.md
// describes the page; the checks are in verify_formats.js, over the strict
// reading in verify_encoding.js, which client/web/build_page.cmake puts
// before this file in the page's one inline script.
//
// Every string from a file reaches the page through textContent, never as
// HTML.
(() => {
  'use strict';

  const { sha256 } = noble.sha2;
  const {
    Failure, fail, hex, equalBytes, shown, JObject, JNumber
  } = verifyEncoding;
  const {
    PREDICATE_TYPE, SUBJECT_PREFIX, keyId, noteKeyHash, parsePublicKey,
    canonicalEnvelope, verifyCertificate, verifyReceipt,
    verifyTlogProof
  } = verifyFormats;

  // ------------------------------------------------------------ the page
  const INPUTS = ['cert', 'key', 'proof', 'receipt', 'photo'];
  const files = {};
  let generation = 0;
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  async function readAll(file) {
    return new Uint8Array(await file.arrayBuffer());
  }
  async function hashFile(file) {
    const h = sha256.create();
    const step = 4 << 20;
    for (let off = 0; off < file.size; off += step) h.update(new Uint8Array(await file.slice(off, off + step).arrayBuffer()));
    return 'sha256:' + hex(h.digest());
  }

  const str = (obj, name) => (obj instanceof JObject && typeof obj.get(name) === 'string' ? obj.get(name) : undefined);
  const num = (obj, name) => (obj instanceof JObject && obj.get(name) instanceof JNumber ? obj.get(name).text : undefined);
  const plural = (n, one, many) => `${n} ${n === 1n || n === 1 || n === '1' ? one : many}`;
  const BASIS = {
    'ftc-order': 'FTC order',
    'gdpr-art17': 'GDPR Art. 17 (right to erasure)',
    ccpa: 'CCPA deletion request',
    contract: 'contract',
    other: 'other',
  };

  function section(parent, title, rows) {
    parent.append(el('h2', '', title));
    const table = el('table');
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === '') continue;
      const tr = el('tr');
      tr.append(el('th', '', k));
      const td = el('td');
      if (v instanceof Node) td.append(v);
      else td.textContent = shown(v);
      tr.append(td);
      table.append(tr);
    }
    parent.append(table);
  }

  function edgeText(p) {
    if (!(p instanceof JObject)) return 'unknown edge';
    const type = str(p, 'type') ?? '?';
    const rel = str(p, 'relation');
    const parent = str(p, 'dataset') !== undefined ? `dataset "${str(p, 'dataset')}"` : str(p, 'model') !== undefined ? `model ${str(p, 'model')}` : str(p, 'item') !== undefined ? `a ${str(p, 'item')} (not named)` : 'an unnamed parent';
    return `${type} ${parent}` + (rel ? ` (relation "${rel}")` : '');
  }

  function renderSummary(r) {
    const out = $('#summary');
    const p = r.cert.predicate;
    const items = p.get('items');
    const kinds = [...r.cert.byKind].map(([k, n]) => plural(n, k, k + 's')).join(', ');
    const derived = Array.isArray(p.get('derivedModels')) ? p.get('derivedModels') : [];
    const held = Array.isArray(p.get('retainedUnderHold')) ? p.get('retainedUnderHold') : [];
    const deleted = [
      ['Items', `${plural(r.cert.count, 'item', 'items')}: ${kinds}`],
      ['Merkle root', hex(r.cert.root)],
      ['Leaf format', str(items, 'leafFormat')],
      ['Derived models', derived.length ? plural(derived.length, 'model', 'models') + ' pulled in by lineage' : 'none'],
    ];
    derived.forEach((m, i) => {
      deleted.push([`Model ${i + 1}`, `${str(m, 'digest') ?? '?'}` + (num(m, 'size') ? ` (${num(m, 'size')} bytes)` : '')]);
      deleted.push([`Lineage edge ${i + 1}`, `${str(m, 'digest') ?? '?'} \u2190 ${edgeText(m instanceof JObject ? m.get('pulledInBy') : null)}`]);
    });
    deleted.push(['Retained under legal hold', held.length ? plural(held.length, 'item', 'items') : 'none']);
    held.forEach((h, i) => {
      const via = h instanceof JObject && h.has('pulledInBy') ? `; pulled in by ${edgeText(h.get('pulledInBy'))}` : '';
      deleted.push([`Hold ${i + 1}`, `${str(h, 'kind') ?? '?'}${str(h, 'digest') ? ' ' + str(h, 'digest') : ''}: hold ${str(h, 'holdId') ?? '?'}, "${str(h, 'reason') ?? ''}"${via}`]);
    });
    section(out, 'What was deleted', deleted);

    const method = p.get('method');
    const dest = p.get('destruction');
    const first = num(dest, 'rootEpochDestroyed');
    const installed = num(dest, 'rootEpochInstalled');
    let epochs;
    if (first !== undefined && installed !== undefined && BigInt(installed) > BigInt(first)) {
      const n = BigInt(installed) - BigInt(first);
      epochs = n === 1n ? `epoch ${first} (1 epoch)` : `epochs ${first} to ${BigInt(installed) - 1n} (${n} epochs)`;
      epochs += `; epoch ${installed} was in force when the certificate was signed`;
    } else if (first !== undefined) {
      epochs = `from epoch ${first}` + (installed !== undefined ? ` (installed: ${installed})` : '');
    }
    const san = str(method, 'sanitization');
    section(out, 'How', [
      ['Technique', str(method, 'technique') === 'cryptographic-erase' ? 'cryptographic erase (cryptographic-erase): the keys were destroyed' : str(method, 'technique')],
      ['Standard', [str(method, 'standard'), san ? (san === 'purge' ? 'Purge' : san) : undefined].filter(Boolean).join(', ')],
      ['Vault backend', str(dest, 'vaultBackend')],
      ['Root key epochs destroyed', epochs],
    ]);

    const times = p.get('times');
    section(out, 'When', [
      ['Requested', str(times, 'requested')],
      ['Destroyed', str(times, 'destroyed')],
      ['Certificate issued', str(times, 'issued')],
    ]);

    const req = p.get('request');
    const order = p.get('order');
    const basis = [];
    if (order instanceof JObject) {
      basis.push(['Order id', str(order, 'id')]);
      const b = str(order, 'basis');
      basis.push(['Legal basis', b === undefined ? undefined : BASIS[b] ? `${BASIS[b]} (${b})` : b]);
      basis.push(['Reference', str(order, 'reference')]);
      basis.push(['Received', str(order, 'received')]);
      basis.push(['Due', str(order, 'due')]);
      basis.push(['Private part', str(order, 'privateCommitment') ? `committed to (${str(order, 'privateCommitment')}); opened by the private manifest` : undefined]);
    } else {
      basis.push(['Order', 'none (a direct shred request)']);
    }
    basis.push(['Request id', str(req, 'id')]);
    basis.push(['Reason', str(req, 'reason')]);
    section(out, 'On what basis', basis);

    section(out, 'Certificate', [
      ['Certificate id', r.cert.id],
      ['Signed by key', r.cert.keyid],
      ['Key given as', r.keySpelling],
      ['shredd version', str(p.get('shredd'), 'version')],
    ]);

    const log = p.get('log');
    const logRows = [
      ['Log origin', str(log, 'origin') ?? (r.tlog ? r.tlog.checkpoint.origin : undefined)],
      ['Entry index', num(log, 'index') ?? (r.tlog ? String(r.tlog.index) : undefined)],
    ];
    if (r.tlog) {
      logRows.push(['Checkpoint size', `${r.tlog.checkpoint.size} entries`]);
      logRows.push(['Checkpoint root', hex(r.tlog.checkpoint.root)]);
      logRows.push(['Inclusion', `proven: the certificate is entry ${r.tlog.index} of the log's signed checkpoint of ${r.tlog.checkpoint.size} entries`]);
    } else if (r.tlogError) {
      logRows.push(['Inclusion', `NOT proven: ${r.tlogError}`]);
    } else {
      logRows.push(['Inclusion', 'not checked: give the certificate\'s .tlog-proof']);
    }
    if (r.reformatted) logRows.push(['Note', r.reformatted]);
    section(out, 'Transparency log', logRows);

    const mine = [];
    if (r.fileLine) mine.push(['Your file', el('span', r.fileClass, r.fileLine)]);
    if (r.receiptItem) mine.push(['Receipt item', `${r.receiptItem.kind} ${r.receiptItem.digest} (${r.receiptItem.size} bytes)`]);
    if (mine.length) section(out, 'Your file', mine);
  }

  function setVerdict(result, text, checked) {
    const v = $('#verdict');
    v.textContent = text;
    v.dataset.result = result;
    v.dataset.checked = checked;
  }

  async function verifyInputs(gen) {
    const given = INPUTS.filter((k) => files[k]);
    const checked = given.join(',');
    const checks = $('#checks');
    const summary = $('#summary');
    checks.replaceChildren();
    summary.replaceChildren();
    if (!files.cert || !files.key) {
      setVerdict('pending', 'Give a certificate and a public key.', checked);
      return;
    }
    setVerdict('pending', 'Checking\u2026', checked);
    const data = {};
    for (const k of ['cert', 'key', 'proof', 'receipt']) if (files[k]) data[k] = await readAll(files[k]);
    const photoDigest = files.photo ? await hashFile(files.photo) : null;
    if (gen !== generation) return;

    const steps = [];
    const pass = (t) => steps.push(['pass', t]);
    const note = (t) => steps.push(['note', t]);
    const r = {};
    let failure = null;
    const stage = (name, fn) => {
      if (failure) return undefined;
      try {
        return fn();
      } catch (e) {
        if (!(e instanceof Failure)) throw e;
        failure = { stage: name, reason: e.message };
        steps.push(['fail', `${name}: ${e.message}`]);
        return undefined;
      }
    };

    const key = stage('public key', () => parsePublicKey(data.key));
    if (key) {
      r.keySpelling = key.spelling;
      pass(`Public key read (${key.spelling}${key.name ? ', log ' + shown(key.name) : ''}): ${keyId(key.key)}`);
    }
    const cert = stage('certificate', () => verifyCertificate(data.cert, key.key));
    if (cert) {
      r.cert = cert;
      if (cert.envelope.sigstoreBundle) pass('Sigstore bundle: the certificate is the DSSE envelope it carries (dsseEnvelope)');
      pass(`Signature verifies under ${cert.keyid} (DSSE, Ed25519)`);
      pass(`Statement: in-toto v1, predicate ${PREDICATE_TYPE}, one subject ${SUBJECT_PREFIX}${shown(cert.id)} with the Merkle root; ${cert.count} items = the sum of byKind`);
    }

    // The log entry is the canonical envelope (docs/FORMATS.md).
    let canonical = null;
    let canonicalError = null;
    if (cert) {
      try {
        canonical = canonicalEnvelope(cert.envelope.doc);
      } catch (e) {
        if (!(e instanceof Failure)) throw e;
        canonicalError = e.message;
      }
      // A Sigstore bundle is no spelling of the envelope: the envelope it
      // carries is checked, and logged in its canonical form (as shredctl).
      if (canonical && !cert.envelope.sigstoreBundle && !equalBytes(canonical, data.cert)) {
        r.reformatted = 'This file was reformatted; its canonical form is the logged certificate (same signature and payload, different JSON spelling).';
      }
    }
    if (cert && data.proof) {
      const log = cert.predicate.get('log');
      const origin = str(log, 'origin');
      r.tlog = stage('log proof', () => {
        // As shredctl verify (client/cli_verify.cc CheckLogInclusion): the
        // proof is for the entry the signed certificate names, in the log it
        // names, which must be the verifier key's log if the key names one;
        // an SPKI key has no name, and the checkpoint must still be signed
        // by it under the certificate's origin.
        const index = log instanceof JObject ? log.get('index') : undefined;
        if (origin === undefined || !(index instanceof JNumber) || index.unsigned === null) fail('the certificate names no log entry (no predicate.log)');
        if (key.name && origin !== key.name) fail(`the certificate names log "${shown(origin)}" but the verifier key is for log "${shown(key.name)}"`);
        if (canonical === null) fail(`the certificate has no canonical form, so no log entry: ${canonicalError}`);
        const verifier = key.name ? key : { key: key.key, name: origin, keyHash: noteKeyHash(origin, key.key) };
        return verifyTlogProof(data.proof, canonical, verifier, index.unsigned);
      });
      if (r.tlog) {
        pass(`Log checkpoint signed by ${keyId(key.key)} for log ${shown(r.tlog.checkpoint.origin)} (${r.tlog.checkpoint.size} entries)`);
        pass(`Inclusion: the certificate's canonical envelope is entry ${r.tlog.index} of that checkpoint (RFC 9162)`);
        if (r.reformatted) note(r.reformatted);
      } else {
        r.tlogError = failure.reason;
      }
    } else if (cert) {
      note('Log inclusion not checked (no .tlog-proof given).');
      if (r.reformatted) note(r.reformatted);
    }

    if (cert && data.receipt) {
      const item = stage('receipt', () => verifyReceipt(cert, data.receipt, photoDigest));
      if (item) {
        r.receiptItem = item;
        pass(`Receipt: ${item.digest} is a leaf of the certificate's Merkle tree (its RFC 9162 path verifies)`);
        if (photoDigest) {
          r.fileLine = `This file (${photoDigest}) is covered by this deletion.`;
          r.fileClass = 'covered';
        } else {
          r.fileLine = item.bundle
            ? `The receipt bundle proves that its ${item.bundle} items are covered; give your file to check that it is one of them.`
            : `The receipt proves that an item ${item.digest} is covered; give your file to check that it is yours.`;
        }
      } else if (photoDigest) {
        r.fileLine = `This file (${photoDigest}) is NOT shown to be covered: ${failure.reason}`;
        r.fileClass = 'notcovered';
      }
    } else if (cert && photoDigest) {
      r.fileLine = `This file (${photoDigest}) was not checked: a certificate names no item (that keeps deletions private); give the receipt the vendor gave you for it.`;
      note(r.fileLine);
    }

    for (const [cls, text] of steps) checks.append(el('li', cls, text));
    if (cert) renderSummary(r);
    if (failure) {
      setVerdict('invalid', `INVALID (${failure.stage}): ${failure.reason}`, checked);
    } else {
      let text = `VALID: certificate ${shown(cert.id)} is signed by ${cert.keyid}`;
      if (r.tlog) text += `, and is entry ${r.tlog.index} of log ${shown(r.tlog.checkpoint.origin)}`;
      if (r.fileClass === 'covered') text += `. ${r.fileLine}`;
      else if (photoDigest) text += `. Your file was not checked: no receipt.`;
      else text += '.';
      if (r.reformatted && r.tlog) text += ' (This file was reformatted; its canonical form is the logged certificate.)';
      setVerdict('valid', text, checked);
    }
  }

  function changed() {
    const gen = ++generation;
    for (const k of INPUTS) {
      const span = document.querySelector(`.file[data-name="${k}"]`);
      span.textContent = files[k] ? `${shown(files[k].name)} (${files[k].size} bytes)` : '';
    }
    verifyInputs(gen).catch((e) => {
      if (gen === generation) setVerdict('invalid', `INVALID (internal error): ${e && e.message ? e.message : e}`, INPUTS.filter((k) => files[k]).join(','));
    });
  }

  for (const k of INPUTS) {
    const input = document.getElementById(k);
    input.addEventListener('change', () => {
      files[k] = input.files && input.files[0] ? input.files[0] : null;
      changed();
    });
    const box = document.querySelector(`.drop[data-for="${k}"]`);
    box.addEventListener('dragover', (e) => {
      e.preventDefault();
      box.classList.add('over');
    });
    box.addEventListener('dragleave', () => box.classList.remove('over'));
    box.addEventListener('drop', (e) => {
      e.preventDefault();
      box.classList.remove('over');
      if (e.dataTransfer && e.dataTransfer.files.length) {
        files[k] = e.dataTransfer.files[0];
        changed();
      }
    });
  }
  // Files dropped outside a box must not make the browser navigate away.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
})();

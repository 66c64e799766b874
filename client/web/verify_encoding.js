// shredd verification page, part 1 of 3: bytes, text and strict JSON, the
// reading under every format (formats/encoding.cc, formats/strict_json.cc,
// formats/json_fields.cc). No DOM, no cryptography.
//
// The page's one inline script is, in this order: the vendored libraries,
// verify_encoding.js, verify_formats.js and verify.js
// (client/web/build_page.cmake). Each of the three is a strict-mode function
// scope; this one returns its names as `verifyEncoding` for the other two.
const verifyEncoding = (() => {
  'use strict';

  const UINT64_MAX = (1n << 64n) - 1n;
  // formats/strict_json.h kMaxJsonNesting: no value inside more arrays and
  // objects than this.
  const MAX_JSON_NESTING = 1000;

  class Failure extends Error {}
  const fail = (msg) => {
    throw new Failure(msg);
  };

  // ------------------------------------------------------------ bytes
  const encoder = new TextEncoder();
  const utf8 = (s) => encoder.encode(s);
  const HEX = '0123456789abcdef';
  const hex = (b) => {
    let s = '';
    for (const x of b) s += HEX[x >> 4] + HEX[x & 15];
    return s;
  };
  const short = (h) => hex(h).slice(0, 16) + '..';
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  };
  const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // Lowercase hex only (formats/encoding.cc HexDecode).
  function hexDecode(s) {
    if (s.length % 2 !== 0) fail(`hex string has odd length ${s.length}`);
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < s.length; i += 2) {
      const hi = HEX.indexOf(s[i]);
      const lo = HEX.indexOf(s[i + 1]);
      if (hi < 0 || lo < 0) fail(`invalid character in lowercase hex string at offset ${hi < 0 ? i : i + 1}`);
      out[i / 2] = (hi << 4) | lo;
    }
    return out;
  }

  // 64 lowercase hex characters (formats/merkle.cc ParseHash).
  function parseHash(s) {
    if (s.length !== 64) fail(`hash must be 64 lowercase hex characters, got ${s.length}`);
    return hexDecode(s);
  }

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  function b64encode(bytes) {
    let out = '';
    for (let i = 0; i < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
      out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
      out += i + 2 < bytes.length ? B64[n & 63] : '=';
    }
    return out;
  }
  // Standard base64, padded, canonical (formats/encoding.cc Base64Decode).
  function b64decode(text) {
    if (text.length % 4 !== 0) fail(`base64 text length ${text.length} is not a multiple of 4`);
    for (let i = 0; i < text.length; ++i) {
      if (!(B64.includes(text[i]) || text[i] === '=')) fail(`invalid character in standard base64 at offset ${i}`);
    }
    const bad = () => fail('invalid standard base64 (RFC 4648 section 4, padded)');
    const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
    if (text.slice(0, text.length - pad).includes('=')) bad();
    const out = [];
    let acc = 0;
    let bits = 0;
    for (const c of text.slice(0, text.length - pad)) {
      acc = (acc << 6) | B64.indexOf(c);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 255);
        acc &= (1 << bits) - 1;
      }
    }
    const bytes = Uint8Array.from(out);
    if (b64encode(bytes) !== text) bad();  // unused bits must be zero
    return bytes;
  }

  function decodeUtf8(bytes, what, { stripBom = false } = {}) {
    try {
      return new TextDecoder('utf-8', { fatal: true, ignoreBOM: !stripBom }).decode(bytes);
    } catch (e) {
      return fail(`${what} is not valid UTF-8`);
    }
  }

  // Shows a string from a file: control characters, bidi formatting
  // characters and line separators escaped (as shredctl prints them).
  function shown(s) {
    return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
      const cp = c.codePointAt(0);
      const named = { 10: '\\n', 13: '\\r', 9: '\\t' }[cp];
      return named ?? (cp < 0x100 ? '\\x' + cp.toString(16).padStart(2, '0') : '\\u{' + cp.toString(16).toUpperCase() + '}');
    });
  }

  // ------------------------------------------------------------ strict JSON
  // One JSON document (RFC 8259) and nothing but whitespace after it, no NUL
  // byte, no member name twice in one object (formats/strict_json.cc).
  // Objects are JObject (a Map), integers keep their digits (JNumber).
  class JObject {
    constructor() {
      this.map = new Map();
    }
    has(k) {
      return this.map.has(k);
    }
    get(k) {
      return this.map.get(k);
    }
    keys() {
      return [...this.map.keys()];
    }
  }
  class JNumber {
    constructor(text) {
      this.text = text;
      // nlohmann's is_number_unsigned: a non-negative integer below 2^64.
      this.unsigned = /^(0|[1-9][0-9]*)$/.test(text) && BigInt(text) <= UINT64_MAX ? BigInt(text) : null;
    }
  }
  const typeName = (v) =>
    v === null ? 'null' : v instanceof JObject ? 'object' : Array.isArray(v) ? 'array' : v instanceof JNumber ? 'number' : typeof v === 'string' ? 'string' : 'boolean';

  function parseStrictJson(bytes, what) {
    const nul = bytes.indexOf(0);
    if (nul >= 0) fail(`${what} is not valid JSON: a NUL byte at offset ${nul} (nothing may follow the document)`);
    let text;
    try {
      text = decodeUtf8(bytes, what, { stripBom: true });
    } catch (e) {
      fail(`${what} is not valid JSON: invalid UTF-8`);
    }
    let pos = 0;
    let duplicate = null;
    const err = (msg) => fail(`${what} is not valid JSON: ${msg} at offset ${pos}`);
    const ws = () => {
      while (pos < text.length && ' \t\n\r'.includes(text[pos])) ++pos;
    };
    const value = (depth) => {
      if (depth > MAX_JSON_NESTING) err(`nested more than ${MAX_JSON_NESTING} arrays and objects deep`);
      ws();
      const c = text[pos];
      if (c === '{') {
        ++pos;
        const obj = new JObject();
        ws();
        if (text[pos] === '}') {
          ++pos;
          return obj;
        }
        for (;;) {
          ws();
          if (text[pos] !== '"') err('expected a member name');
          const k = string();
          ws();
          if (text[pos] !== ':') err("expected ':'");
          ++pos;
          const v = value(depth + 1);
          if (obj.map.has(k) && duplicate === null) duplicate = k;
          obj.map.set(k, v);
          ws();
          if (text[pos] === ',') {
            ++pos;
            continue;
          }
          if (text[pos] === '}') {
            ++pos;
            return obj;
          }
          err("expected ',' or '}'");
        }
      }
      if (c === '[') {
        ++pos;
        const arr = [];
        ws();
        if (text[pos] === ']') {
          ++pos;
          return arr;
        }
        for (;;) {
          arr.push(value(depth + 1));
          ws();
          if (text[pos] === ',') {
            ++pos;
            continue;
          }
          if (text[pos] === ']') {
            ++pos;
            return arr;
          }
          err("expected ',' or ']'");
        }
      }
      if (c === '"') return string();
      for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
        if (text.startsWith(lit, pos)) {
          pos += lit.length;
          return v;
        }
      }
      const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
      if (m && m[0].length > 0 && m[0] !== '-') {
        pos += m[0].length;
        if (!/^-?(0|[1-9][0-9]*)$/.test(m[0]) && !Number.isFinite(Number(m[0]))) err('number overflow');
        return new JNumber(m[0]);
      }
      return err(pos >= text.length ? 'unexpected end of input' : 'unexpected character');
    };
    const string = () => {
      ++pos;  // opening quote
      let out = '';
      for (;;) {
        if (pos >= text.length) err('unterminated string');
        const c = text[pos];
        const code = c.charCodeAt(0);
        if (c === '"') {
          ++pos;
          return out;
        }
        if (code < 0x20) err('control character in a string');
        if (c !== '\\') {
          out += c;
          ++pos;
          continue;
        }
        const e = text[pos + 1];
        const simple = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }[e];
        if (simple !== undefined) {
          out += simple;
          pos += 2;
          continue;
        }
        if (e !== 'u') err('invalid escape');
        const unit = (at) => {
          const h = text.slice(at, at + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) err('invalid \\u escape');
          return parseInt(h, 16);
        };
        const u = unit(pos + 2);
        pos += 6;
        if (u >= 0xdc00 && u <= 0xdfff) err('lone low surrogate');
        if (u >= 0xd800 && u <= 0xdbff) {
          if (text[pos] !== '\\' || text[pos + 1] !== 'u') err('high surrogate not followed by a low surrogate');
          const lo = unit(pos + 2);
          if (lo < 0xdc00 || lo > 0xdfff) err('high surrogate not followed by a low surrogate');
          pos += 6;
          out += String.fromCharCode(u, lo);
          continue;
        }
        out += String.fromCharCode(u);
      }
    };
    let doc;
    try {
      doc = value(0);
    } catch (e) {
      if (e instanceof RangeError) fail(`${what} is not valid JSON: nesting too deep`);
      throw e;
    }
    ws();
    if (pos !== text.length) err('unexpected content after the document');
    if (duplicate !== null) fail(`${what} has a duplicate member "${shown(duplicate.slice(0, 64))}" in one object`);
    return doc;
  }

  // formats/json_fields.cc
  function member(obj, where, name) {
    if (!(obj instanceof JObject)) fail(`${where} is not a JSON object`);
    if (!obj.has(name)) fail(`${where} has no "${name}"`);
    return obj.get(name);
  }
  function getString(obj, where, name) {
    const v = member(obj, where, name);
    if (typeof v !== 'string') fail(`${where}.${name} is a ${typeName(v)}, not a string`);
    return v;
  }
  function getUint(obj, where, name) {
    const v = member(obj, where, name);
    if (!(v instanceof JNumber) || v.unsigned === null) fail(`${where}.${name} is not a non-negative integer`);
    return v.unsigned;
  }
  function getTyped(obj, where, name, type) {
    const v = member(obj, where, name);
    if (typeName(v) !== type) fail(`${where}.${name} is a ${typeName(v)}, not an ${type}`);
    return v;
  }
  function getHash(obj, where, name) {
    const s = getString(obj, where, name);
    try {
      return parseHash(s);
    } catch (e) {
      return fail(`${where}.${name}: ${e.message}`);
    }
  }
  function expectString(obj, where, name, want) {
    const got = getString(obj, where, name);
    if (got !== want) fail(`${where}.${name} is "${shown(got)}", expected "${want}"`);
  }

  return {
    Failure, fail, UINT64_MAX, utf8, hex, short, concat, equalBytes, hexDecode,
    parseHash, b64encode, b64decode, decodeUtf8, shown, JObject, JNumber, typeName,
    parseStrictJson, getString, getUint, getTyped, getHash, expectString
  };
})();

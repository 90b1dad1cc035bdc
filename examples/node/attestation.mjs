// Verify the enclave's attestation in Node.js before encrypting to its key
// (docs/attestation.md; the reference verifier is enclave_bridge/attestation/verify.py, which
// the Python client prudencial/client runs). Only node:crypto: no CBOR or X.509 package.
//
// verifyAttestation(answer, nonce, policy) checks, and throws AttestationRefused otherwise:
//   1. the answer echoes our nonce and has the documented fields;
//   2. the COSE_Sign1 document (ES384) chains root -> ... -> leaf to the PINNED root
//      (cabundle[0] byte-equal to it, its SHA-256 too when pinned), each certificate issued and
//      signed by the one above, CA flags right, every certificate valid now, signed by the leaf;
//   3. the document is at most maxAgeSeconds old and not from the future (60 s skew);
//   4. its nonce is ours, its PCRs are the PINNED ones, and it is not a debug enclave;
//   5. its public_key is the current envelope JWK, and its user_data binds the envelope JWKS
//      (SHA-256 of the canonical JSON), the current kid and the result-signing key.
// Returns {kid, envelopeJwk, signingJwk, timestamp, moduleId}.
import { X509Certificate, createHash, createPublicKey, timingSafeEqual, verify } from "node:crypto";

export class AttestationRefused extends Error {}

const refuse = (message) => {
  throw new AttestationRefused(message);
};

// --- minimal CBOR (RFC 8949): definite lengths only, as the NSM writes them -------------------

function decodeCbor(bytes) {
  const buf = Buffer.from(bytes);
  let pos = 0;
  const need = (n) => {
    if (pos + n > buf.length) refuse("malformed CBOR (truncated)");
  };
  const length = (info) => {
    if (info < 24) return info;
    const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (!size) refuse("malformed CBOR (indefinite or reserved length)");
    need(size);
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(buf[pos + i]);
    pos += size;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) refuse("malformed CBOR (length too large)");
    return Number(value);
  };
  const item = (depth) => {
    if (depth > 16) refuse("malformed CBOR (too deep)");
    need(1);
    const first = buf[pos++];
    const major = first >> 5;
    const info = first & 31;
    if (major === 7) {
      if (info === 20) return false;
      if (info === 21) return true;
      if (info === 22 || info === 23) return null;
      refuse("malformed CBOR (unsupported simple value)");
    }
    const n = length(info);
    switch (major) {
      case 0:
        return n;
      case 1:
        return -1 - n;
      case 2:
        need(n);
        pos += n;
        return buf.subarray(pos - n, pos);
      case 3:
        need(n);
        pos += n;
        return buf.subarray(pos - n, pos).toString("utf8");
      case 4:
        return Array.from({ length: n }, () => item(depth + 1));
      case 5: {
        const map = new Map();
        for (let i = 0; i < n; i++) {
          const key = item(depth + 1);
          if (map.has(key)) refuse("malformed CBOR (duplicate map key)");
          map.set(key, item(depth + 1));
        }
        return map;
      }
      case 6:
        return { tag: n, value: item(depth + 1) };
      default:
        return refuse("malformed CBOR");
    }
  };
  const value = item(0);
  if (pos !== buf.length) refuse("malformed CBOR (trailing bytes)");
  return value;
}

function cborHead(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 256) return Buffer.from([(major << 5) | 24, n]);
  if (n < 65536) return Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

function sigStructure(protectedHeader, payload) {
  // ["Signature1", protected, external_aad = b"", payload] (RFC 9052 §4.4)
  const text = Buffer.from("Signature1", "utf8");
  return Buffer.concat([
    cborHead(4, 4),
    cborHead(3, text.length),
    text,
    cborHead(2, protectedHeader.length),
    protectedHeader,
    cborHead(2, 0),
    cborHead(2, payload.length),
    payload,
  ]);
}

// --- helpers ----------------------------------------------------------------------------------

const sha256 = (data) => createHash("sha256").update(data).digest();
const same = (a, b) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

function canonicalJson(value) {
  // Python's json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const spkiOf = (jwk) => createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "der" });

function field(map, name, check) {
  const value = map.get(name);
  if (!check(value)) refuse(`attestation field '${name}' is missing or of the wrong type`);
  return value;
}

const isBytes = (v) => Buffer.isBuffer(v);
const isBytesOrNull = (v) => v === null || v === undefined || Buffer.isBuffer(v);

// --- the checks -------------------------------------------------------------------------------

export function verifyAttestation(answer, nonce, policy, now = new Date()) {
  if (!answer || typeof answer !== "object") refuse("the answer is not a JSON object");
  for (const name of ["document", "nonce", "kid", "signing_kid"]) {
    if (typeof answer[name] !== "string") refuse(`the answer's field '${name}' is not text`);
  }
  if (!Array.isArray(answer.kids) || !answer.jwks || !Array.isArray(answer.jwks.keys)) {
    refuse("the answer's kids/jwks are not in the documented shape");
  }
  if (!same(Buffer.from(answer.nonce, "base64url"), nonce)) {
    refuse("the answer is not for the nonce we sent (a replayed answer?)");
  }
  if (!answer.kids.includes(answer.kid)) refuse("the current kid is not listed in kids");
  for (const key of answer.jwks.keys) {
    if (["d", "p", "q", "dp", "dq", "qi", "k"].some((part) => part in key)) {
      refuse(`key ${key.kid} of the JWKS carries private material`);
    }
  }
  const envelopeJwk = answer.jwks.keys.find((k) => k.kid === answer.kid && k.use === "enc");
  const signingJwk = answer.jwks.keys.find((k) => k.kid === answer.signing_kid && k.use === "sig");
  if (!envelopeJwk || envelopeJwk.kty !== "RSA") refuse("no RSA envelope key with the current kid");
  if (!signingJwk || signingJwk.kty !== "EC") refuse("no EC signing key with the signing kid");

  // COSE_Sign1: [protected, unprotected, payload, signature], untagged or tag 18
  let cose = decodeCbor(Buffer.from(answer.document, "base64url"));
  if (cose && cose.tag === 18) cose = cose.value;
  if (!Array.isArray(cose) || cose.length !== 4) refuse("the document is not a COSE_Sign1");
  const [protectedHeader, unprotected, payloadBytes, signature] = cose;
  if (!isBytes(protectedHeader) || !isBytes(payloadBytes) || !isBytes(signature)) {
    refuse("the document is not a COSE_Sign1");
  }
  const header = decodeCbor(protectedHeader);
  if (!(header instanceof Map) || header.size !== 1 || header.get(1) !== -35) {
    refuse("the document's protected header is not exactly alg ES384");
  }
  if (!(unprotected instanceof Map) || unprotected.size !== 0) {
    refuse("the document's unprotected header is not empty");
  }
  const doc = decodeCbor(payloadBytes);
  if (!(doc instanceof Map)) refuse("the document's payload is not a map");
  const moduleId = field(doc, "module_id", (v) => typeof v === "string" && v.length > 0);
  field(doc, "digest", (v) => v === "SHA384");
  const timestamp = field(doc, "timestamp", (v) => Number.isInteger(v) && v > 0);
  const pcrs = field(doc, "pcrs", (v) => v instanceof Map);
  const leafDer = field(doc, "certificate", isBytes);
  const cabundle = field(doc, "cabundle", (v) => Array.isArray(v) && v.length > 0 && v.every(isBytes));
  const publicKey = field(doc, "public_key", isBytesOrNull);
  const userData = field(doc, "user_data", isBytesOrNull);
  const docNonce = field(doc, "nonce", isBytesOrNull);

  // chain: pinned root == cabundle[0] -> ... -> leaf
  const root = new X509Certificate(policy.trustRoot);
  if (policy.rootSha256 && sha256(root.raw).toString("hex") !== policy.rootSha256.toLowerCase()) {
    refuse("the trust root's SHA-256 is not the pinned one");
  }
  if (!same(cabundle[0], root.raw)) refuse("cabundle[0] is not the pinned trust root");
  const chain = [...cabundle.map((der) => new X509Certificate(der)), new X509Certificate(leafDer)];
  chain.forEach((cert, i) => {
    const label = i === chain.length - 1 ? "enclave leaf certificate" : `cabundle[${i}]`;
    const isLeaf = i === chain.length - 1;
    if (cert.ca === isLeaf) refuse(`${label}: wrong CA flag`);
    const issuer = i === 0 ? cert : chain[i - 1];
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      refuse(`${label} is not issued by the certificate above it`);
    }
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
      refuse(`${label} is not valid now`);
    }
  });
  const leaf = chain[chain.length - 1];
  const ok = verify(
    "sha384",
    sigStructure(protectedHeader, payloadBytes),
    { key: leaf.publicKey, dsaEncoding: "ieee-p1363" },
    signature,
  );
  if (!ok) refuse("the document's ES384 signature does not verify");

  // time, nonce, PCRs
  const age = now.getTime() - timestamp;
  if (age < -60_000) refuse("the document is from the future");
  if (age > policy.maxAgeSeconds * 1000) refuse(`the document is older than ${policy.maxAgeSeconds} s`);
  if (!docNonce || !same(docNonce, nonce)) refuse("the document is not bound to our nonce");
  for (const [index, hex] of Object.entries(policy.pcrs)) {
    const got = pcrs.get(Number(index));
    if (!isBytes(got) || !same(got, Buffer.from(hex, "hex"))) {
      refuse(`PCR${index} is not the published value`);
    }
  }
  if ([0, 1, 2].every((i) => isBytes(pcrs.get(i)) && pcrs.get(i).every((b) => b === 0))) {
    refuse("debug-mode enclave (PCR0, PCR1 and PCR2 all zero)");
  }

  // the keys the document binds
  if (!publicKey || !same(publicKey, spkiOf(envelopeJwk))) {
    refuse("the attested public_key is not the current envelope key");
  }
  const bound = decodeCbor(userData ?? Buffer.alloc(0));
  if (!(bound instanceof Map)) refuse("the attested user_data is not the expected map");
  const encKeys = answer.jwks.keys.filter((k) => k.use === "enc");
  const jwksSha256 = sha256(Buffer.from(canonicalJson({ keys: encKeys }), "utf8"));
  if (
    bound.get("kid") !== answer.kid ||
    !isBytes(bound.get("jwks_sha256")) ||
    !same(bound.get("jwks_sha256"), jwksSha256) ||
    bound.get("sig_kid") !== answer.signing_kid ||
    !isBytes(bound.get("sig_spki")) ||
    !same(bound.get("sig_spki"), spkiOf(signingJwk))
  ) {
    refuse("the attested user_data does not bind this JWKS and signing key");
  }
  return { kid: answer.kid, envelopeJwk, signingJwk, timestamp: new Date(timestamp), moduleId };
}

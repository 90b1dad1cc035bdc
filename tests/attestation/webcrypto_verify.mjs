// Verifies enclave answer JWS tokens with WebCrypto (crypto.subtle), exactly as a browser does:
// import the attested "sig" JWK as ECDSA P-256, verify ES256 (raw r||s over "header.payload").
// stdin: {"jwk": {...}, "tokens": ["<compact JWS>", ...]}
// stdout: {"results": [{"valid": bool, "alg": str|null, "kid": str|null, "body": obj|null}, ...]}
import { webcrypto } from "node:crypto";

const subtle = (globalThis.crypto ?? webcrypto).subtle;

function b64urlBytes(text) {
  return new Uint8Array(Buffer.from(text, "base64url"));
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function verify(key, token) {
  const parts = token.split(".");
  if (parts.length !== 3) return { valid: false, alg: null, kid: null, body: null };
  const header = JSON.parse(new TextDecoder().decode(b64urlBytes(parts[0])));
  if (header.alg !== "ES256") return { valid: false, alg: header.alg ?? null, kid: header.kid ?? null, body: null };
  const signature = b64urlBytes(parts[2]);
  const data = new TextEncoder().encode(`${parts[0]}.${parts[1]}`);
  const valid = await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, data);
  const body = valid ? JSON.parse(new TextDecoder().decode(b64urlBytes(parts[1]))) : null;
  return { valid, alg: header.alg, kid: header.kid ?? null, body };
}

const input = await readStdin();
const { kty, crv, x, y } = input.jwk;
const key = await subtle.importKey(
  "jwk",
  { kty, crv, x, y, ext: true },
  { name: "ECDSA", namedCurve: "P-256" },
  false,
  ["verify"],
);
const results = [];
for (const token of input.tokens) results.push(await verify(key, token));
process.stdout.write(JSON.stringify({ results }));

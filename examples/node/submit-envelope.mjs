#!/usr/bin/env node
// Encrypt a portfolio (or counterparties) JSON, or the filled XLSX template, to the enclave of
// the Plataforma de Monitoramento Prudencial, with `jose` (CompactEncrypt, importJWK), and print
// or POST the JWE. docs/api.md § Node.js; docs/envelope.md.
//
// Key from the platform, verified here (attestation.mjs) against the policy YOU pin:
//   node submit-envelope.mjs --base-url https://HOST --token TOKEN \
//        --trust-root root.pem --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX [--root-sha256 HEX] \
//        --payload portfolio.json [--post --week 202303001 --agent-id 7 --kind portfolio]
// Key verified by the Python client (python -m prudencial.client attestation --export FILE):
//   node submit-envelope.mjs --attestation verified.json --payload portfolio.json
//
// stdout: the compact JWE, or with --post the platform's 202 answer (JSON).
// Exit status: 0 done, 2 usage, 3 attestation refused (nothing encrypted), 4 platform refused.
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import * as jose from "jose";

import { AttestationRefused, verifyAttestation } from "./attestation.mjs";

const USAGE = `usage: node submit-envelope.mjs --payload FILE
         (--attestation VERIFIED.json | --base-url URL --token T --trust-root PEM --pcr N=HEX...)
         [--root-sha256 HEX] [--max-age SECONDS]
         [--post --week CODE --agent-id ID --kind portfolio|counterparties] [--idempotency-key K]`;

function fail(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

const { values: args } = parseArgs({
  options: {
    payload: { type: "string" },
    attestation: { type: "string" },
    "base-url": { type: "string" },
    token: { type: "string" },
    "trust-root": { type: "string" },
    "root-sha256": { type: "string" },
    pcr: { type: "string", multiple: true, default: [] },
    "max-age": { type: "string", default: "300" },
    post: { type: "boolean", default: false },
    week: { type: "string" },
    "agent-id": { type: "string" },
    kind: { type: "string", default: "portfolio" },
    "idempotency-key": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) fail(0, USAGE);
if (!args.payload) fail(2, USAGE);
const baseUrl = (args["base-url"] ?? process.env.PRUDENCIAL_BASE_URL ?? "").replace(/\/+$/, "");
const token = args.token ?? process.env.PRUDENCIAL_TOKEN;
const api = baseUrl.endsWith("/api/v1") ? baseUrl : `${baseUrl}/api/v1`;
const headers = { Authorization: `Token ${token}`, "Accept-Language": "pt-BR" };

async function platformError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    const err = body.error ?? body;
    const rows = (err.errors ?? body.errors ?? []).map((e) => `  ${e.row ?? "—"}  ${e.field}  ${e.rule}`);
    return [`${response.status} ${err.code ?? ""}: ${err.message ?? err.detail ?? text}`, ...rows].join("\n");
  } catch {
    return `${response.status}: ${text.slice(0, 200)}`;
  }
}

async function currentKey() {
  if (args.attestation) {
    // Verified (and exported) by the Python client with the same pinned policy.
    const verified = JSON.parse(readFileSync(args.attestation, "utf8"));
    const jwk = verified.jwks.keys.find((k) => k.kid === verified.kid && k.use === "enc");
    if (!jwk) fail(3, `no envelope key with kid ${verified.kid} in ${args.attestation}`);
    return jwk;
  }
  if (!baseUrl || !token || !args["trust-root"] || args.pcr.length === 0) fail(2, USAGE);
  const pcrs = Object.fromEntries(
    args.pcr.map((item) => {
      const [index, hex] = item.split("=");
      if (!/^\d+$/.test(index) || !/^[0-9a-fA-F]{96}$/.test(hex ?? "")) fail(2, `bad --pcr ${item}`);
      return [index, hex];
    }),
  );
  if (!("0" in pcrs)) fail(2, "--pcr 0=HEX is required");
  const nonce = randomBytes(32); // our own, fresh: the document must be bound to it
  const response = await fetch(
    `${api}/enclave/attestation/?nonce=${nonce.toString("base64url")}`,
    { headers },
  );
  if (!response.ok) fail(4, await platformError(response));
  const answer = await response.json();
  try {
    const verified = verifyAttestation(answer, nonce, {
      trustRoot: readFileSync(args["trust-root"]),
      rootSha256: args["root-sha256"],
      pcrs,
      maxAgeSeconds: Number(args["max-age"]),
    });
    return verified.envelopeJwk;
  } catch (error) {
    if (error instanceof AttestationRefused) {
      fail(3, `attestation refused: ${error.message}. Nothing was encrypted.`);
    }
    throw error;
  }
}

const jwk = await currentKey();
const key = await jose.importJWK(jwk, "RSA-OAEP-256");
// The file's bytes as they are: UTF-8 JSON, or the XLSX template.
const plaintext = new Uint8Array(readFileSync(args.payload));
const jwe = await new jose.CompactEncrypt(plaintext)
  .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: jwk.kid })
  .encrypt(key);

if (!args.post) {
  process.stdout.write(`${jwe}\n`);
  process.exit(0);
}
if (!baseUrl || !token || !args.week || !args["agent-id"]) fail(2, USAGE);
if (!["portfolio", "counterparties"].includes(args.kind)) fail(2, "--kind portfolio|counterparties");
const response = await fetch(`${api}/weeks/${encodeURIComponent(args.week)}/agents/${encodeURIComponent(args["agent-id"])}/${args.kind}/`, {
  method: "POST",
  headers: {
    ...headers,
    "Content-Type": "application/json",
    // A retry with the same key makes no second version.
    "Idempotency-Key": args["idempotency-key"] ?? randomUUID(),
  },
  body: JSON.stringify({ jwe }),
});
if (response.status !== 202) fail(4, await platformError(response));
process.stdout.write(`${JSON.stringify(await response.json())}\n`);

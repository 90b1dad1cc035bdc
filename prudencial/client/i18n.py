"""Messages of the agent client in pt-BR (default) and English.

The client runs on the agents' machines without Django, so it keeps its own small catalogue
instead of the project's gettext files. The language is chosen by ``--lang``, then the config's
``language``, then ``PRUDENCIAL_LANG``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``: English when it
starts with ``en``, pt-BR otherwise. The same choice goes to the platform as
``Accept-Language``, so its messages come in the same language.
"""

from __future__ import annotations

import os
from typing import Any

PT, EN = "pt-br", "en"
_language = [PT]

CATALOG: dict[str, tuple[str, str]] = {
    # --- configuration -------------------------------------------------------------------------
    "config.trust_root_missing": (
        "client.toml: [attestation] trust_root é obrigatório ('aws' ou o caminho de um PEM).",
        "client.toml: [attestation] trust_root is required ('aws' or the path of a PEM).",
    ),
    "config.trust_root_unreadable": (
        "Não consegui ler a raiz de confiança {path}.",
        "Cannot read the trust root {path}.",
    ),
    "config.pcrs_missing": (
        "client.toml: [attestation.pcrs] é obrigatório: os PCRs publicados pela CCEE para a "
        "versão do enclave (nunca os do próprio documento).",
        "client.toml: [attestation.pcrs] is required: the PCRs CCEE published for the enclave "
        "release (never the document's own).",
    ),
    "config.pcr_index": (
        "client.toml: índice de PCR inválido: {index} (0 a 31).",
        "client.toml: invalid PCR index {index} (0 to 31).",
    ),
    "config.pcr_value": (
        "client.toml: PCR{index} deve ter 96 dígitos hexadecimais (SHA-384).",
        "client.toml: PCR{index} must be 96 hexadecimal digits (SHA-384).",
    ),
    "config.pcr_required": (
        "client.toml: PCR{index} é obrigatório em [attestation.pcrs].",
        "client.toml: PCR{index} is required in [attestation.pcrs].",
    ),
    "config.root_sha256": (
        "client.toml: root_sha256 deve ter 64 dígitos hexadecimais.",
        "client.toml: root_sha256 must be 64 hexadecimal digits.",
    ),
    "config.max_age": (
        "client.toml: max_age_seconds deve ser um inteiro de 1 a 3600.",
        "client.toml: max_age_seconds must be an integer from 1 to 3600.",
    ),
    "config.allow_debug": (
        "client.toml: allow_debug deve ser true ou false.",
        "client.toml: allow_debug must be true or false.",
    ),
    "config.no_trust_policy": (
        "Sem política de atestação em {path}: configure [attestation] (raiz de confiança e "
        "PCRs) com 'init' antes de cifrar. Nada foi enviado.",
        "No attestation policy in {path}: set [attestation] (trust root and PCRs) with 'init' "
        "before encrypting. Nothing was sent.",
    ),
    "config.unreadable": (
        "Não consegui ler {path}: {reason}",
        "Cannot read {path}: {reason}",
    ),
    "config.missing": (
        "Arquivo de configuração {path} não existe.",
        "Config file {path} does not exist.",
    ),
    "config.base_url": (
        "client.toml: base_url deve ser um endereço (https://…).",
        "client.toml: base_url must be an address (https://…).",
    ),
    "config.no_base_url": (
        "Endereço da plataforma não configurado: use --base-url, PRUDENCIAL_BASE_URL ou 'init'.",
        "Platform address not configured: use --base-url, PRUDENCIAL_BASE_URL or 'init'.",
    ),
    "config.verify_tls": (
        "client.toml: verify_tls deve ser true, false ou o caminho de um pacote de CAs.",
        "client.toml: verify_tls must be true, false or the path of a CA bundle.",
    ),
    "config.timeout": (
        "client.toml: timeout deve ser um número de segundos > 0.",
        "client.toml: timeout must be a number of seconds > 0.",
    ),
    "config.token_permissions": (
        "O arquivo do token {path} pode ser lido por outros usuários: corrija com "
        "'chmod 600 {path}' ou faça login de novo.",
        "The token file {path} is readable by other users: fix it with 'chmod 600 {path}' or "
        "log in again.",
    ),
    "config.not_logged_in": (
        "Sem token: faça 'login' primeiro (ou defina PRUDENCIAL_TOKEN).",
        "No token: run 'login' first (or set PRUDENCIAL_TOKEN).",
    ),
    # --- attestation ---------------------------------------------------------------------------
    "attestation.no_key": (
        "Atestação recusada: o JWKS não tem a chave '{use}' de kid {kid}. Nada foi cifrado.",
        "Attestation refused: the JWKS has no '{use}' key with kid {kid}. Nothing was encrypted.",
    ),
    "attestation.shape": (
        "Atestação recusada: o campo '{field}' da resposta não tem o formato documentado. "
        "Nada foi cifrado.",
        "Attestation refused: the answer's field '{field}' is not in the documented shape. "
        "Nothing was encrypted.",
    ),
    "attestation.private_key": (
        "Atestação recusada: a chave {kid} do JWKS traz material privado. Nada foi cifrado.",
        "Attestation refused: key {kid} of the JWKS carries private material. Nothing was "
        "encrypted.",
    ),
    "attestation.kid_not_listed": (
        "Atestação recusada: o kid atual {kid} não está na lista 'kids'. Nada foi cifrado.",
        "Attestation refused: the current kid {kid} is not in 'kids'. Nothing was encrypted.",
    ),
    "attestation.enc_key_type": (
        "Atestação recusada: a chave de envelope {kid} não é RSA para RSA-OAEP-256. Nada foi "
        "cifrado.",
        "Attestation refused: envelope key {kid} is not RSA for RSA-OAEP-256. Nothing was "
        "encrypted.",
    ),
    "attestation.enc_key_size": (
        "Atestação recusada: a chave de envelope {kid} tem {bits} bits; o mínimo é {minimum}. "
        "Nada foi cifrado.",
        "Attestation refused: envelope key {kid} has {bits} bits; the minimum is {minimum}. "
        "Nothing was encrypted.",
    ),
    "attestation.sig_key_type": (
        "Atestação recusada: a chave de assinatura {kid} não é EC P-256 (ES256). Nada foi cifrado.",
        "Attestation refused: signing key {kid} is not EC P-256 (ES256). Nothing was encrypted.",
    ),
    "attestation.nonce_echo": (
        "Atestação recusada: a resposta não é para o nonce que enviamos (resposta repetida?). "
        "Nada foi cifrado.",
        "Attestation refused: the answer is not for the nonce we sent (a replayed answer?). "
        "Nothing was encrypted.",
    ),
    "attestation.document": (
        "Atestação recusada: {reason}. Nada foi cifrado.",
        "Attestation refused: {reason}. Nothing was encrypted.",
    ),
    # --- local files ---------------------------------------------------------------------------
    "payload.not_utf8": ("O arquivo JSON não está em UTF-8.", "The JSON file is not UTF-8."),
    "payload.json_refused": ("JSON recusado: {rule}.", "JSON refused: {rule}."),
    "payload.json_syntax": (
        "JSON inválido na linha {line}, coluna {column}.",
        "Invalid JSON at line {line}, column {column}.",
    ),
    "payload.unreadable": ("Não consegui ler {path}: {reason}", "Cannot read {path}: {reason}"),
    "payload.too_large": (
        "O arquivo tem {size} bytes; o limite é {limit} bytes.",
        "The file has {size} bytes; the limit is {limit} bytes.",
    ),
    "payload.no_parameters": (
        "A semana {week} ainda não tem parâmetros publicados.",
        "Week {week} has no published parameters yet.",
    ),
    "payload.bad_parameters": (
        "Parâmetros da semana recusados: {reason}",
        "Week parameters refused: {reason}",
    ),
    "payload.xlsx_unreadable": (
        "Não consegui abrir a planilha XLSX.",
        "Cannot open the XLSX workbook.",
    ),
    "payload.invalid": (
        "O arquivo tem {count} erro(s); nada foi enviado:",
        "The file has {count} error(s); nothing was sent:",
    ),
    "payload.unknown_agents": (
        "O arquivo cobre agentes que você não pode enviar: {acronyms}. Nada foi enviado.",
        "The file covers agents you may not submit for: {acronyms}. Nothing was sent.",
    ),
    "payload.no_agents": (
        "O arquivo não cobre nenhum agente.",
        "The file covers no agent.",
    ),
    "payload.agent_not_found": (
        "Agente {agent} não encontrado entre os que você pode ver.",
        "Agent {agent} not found among those you may see.",
    ),
    "payload.not_in_file": (
        "O arquivo não tem dados do agente {agent}.",
        "The file holds no data for agent {agent}.",
    ),
    "payload.other_agents": (
        "O arquivo tem dados de outros agentes ({acronyms}); use 'batch' para vários agentes.",
        "The file holds other agents' data ({acronyms}); use 'batch' for many agents.",
    ),
    "payload.receipt_mismatch": (
        "O recibo da plataforma ({got}) não é o SHA-256 do envelope enviado ({expected}).",
        "The platform's receipt ({got}) is not the SHA-256 of the envelope sent ({expected}).",
    ),
    "payload.timeout": (
        "Ainda sem resultado final depois de {seconds} s; siga com 'status'.",
        "Still no final result after {seconds} s; follow it with 'status'.",
    ),
    # --- the reply key and the breakdown -------------------------------------------------------
    "reply.exists": (
        "A chave de resposta {path} já existe; não foi substituída (use --force: os "
        "detalhamentos cifrados à chave antiga ficarão ilegíveis).",
        "The reply key {path} already exists; it was not replaced (use --force: breakdowns "
        "sealed to the old key will become unreadable).",
    ),
    "reply.permissions": (
        "A chave de resposta {path} pode ser lida por outros usuários: corrija com "
        "'chmod 600 {path}' (ou crie outra com 'reply-key init --force').",
        "The reply key {path} is readable by other users: fix it with 'chmod 600 {path}' (or "
        "make a new one with 'reply-key init --force').",
    ),
    "reply.unreadable": (
        "{path} não é uma chave de resposta (JWK EC P-256 com a parte privada).",
        "{path} is not a reply key (an EC P-256 JWK with its private part).",
    ),
    "reply.absent": (
        "Sem chave de resposta em {path}: crie uma com 'reply-key init'.",
        "No reply key at {path}: make one with 'reply-key init'.",
    ),
    "reply.missing": (
        "Sem chave de resposta em {path}: o detalhamento deste resultado não pode ser aberto "
        "(crie uma com 'reply-key init' antes de enviar o portfólio da próxima semana).",
        "No reply key at {path}: this result's breakdown cannot be opened (make one with "
        "'reply-key init' before submitting next week's portfolio).",
    ),
    "reply.none_for_envelope": (
        "Sem chave de resposta em {path}: o envelope vai sem prd_reply e o detalhamento do FA "
        "(VaR por período e fonte, RES_FIN, PLA) não poderá ser lido. Crie uma com "
        "'reply-key init' (ou use --no-reply-key para não ver este aviso).",
        "No reply key at {path}: the envelope goes without prd_reply and the FA's breakdown "
        "(VaR per bucket and source, RES_FIN, PLA) will not be readable. Make one with "
        "'reply-key init' (or pass --no-reply-key to silence this notice).",
    ),
    "reply.other_key": (
        "O detalhamento foi cifrado a outra chave (kid {kid}), não à chave de resposta {path} "
        "(kid {mine}): ela não o abre.",
        "The breakdown was sealed to another key (kid {kid}), not to the reply key {path} "
        "(kid {mine}): it does not open it.",
    ),
    "reply.does_not_open": (
        "A chave de resposta {path} não abre o detalhamento (cifrado a outra chave, ou "
        "adulterado).",
        "The reply key {path} does not open the breakdown (sealed to another key, or "
        "tampered with).",
    ),
    "reply.not_a_breakdown": (
        "O detalhamento aberto com {path} não é um documento prudencial/breakdown/v1.",
        "The breakdown opened with {path} is not a prudencial/breakdown/v1 document.",
    ),
    "reply.not_this_result": (
        "O detalhamento aberto com {path} é de {got}, não deste resultado ({expected}): não "
        "foi mostrado.",
        "The breakdown opened with {path} is for {got}, not for this result ({expected}): "
        "not shown.",
    ),
    # --- platform ------------------------------------------------------------------------------
    "api.http": (
        "A plataforma respondeu {status} ({api_code}): {api_message}",
        "The platform answered {status} ({api_code}): {api_message}",
    ),
    "connection.unreachable": (
        "Não consegui falar com a plataforma em {url} ({reason}).",
        "Cannot reach the platform at {url} ({reason}).",
    ),
}


def resolve_language(explicit: str | None = None, configured: str | None = None) -> str:
    for value in (
        explicit,
        configured,
        os.environ.get("PRUDENCIAL_LANG"),
        os.environ.get("LC_ALL"),
        os.environ.get("LC_MESSAGES"),
        os.environ.get("LANG"),
    ):
        if value:
            return EN if value.lower().startswith("en") else PT
    return PT


def set_language(language: str) -> str:
    _language[0] = EN if language.lower().startswith("en") else PT
    return _language[0]


def language() -> str:
    return _language[0]


def http_language() -> str:
    """The Accept-Language value for the platform."""
    return "en" if _language[0] == EN else "pt-BR"


def tr(key: str, **params: Any) -> str:
    """The message ``key`` in the current language, with ``params`` filled in."""
    entry = CATALOG.get(key)
    if entry is None:
        return key
    text = entry[1] if _language[0] == EN else entry[0]
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


def choose(pt: str, en: str) -> str:
    """Inline text for the CLI's help and output."""
    return en if _language[0] == EN else pt

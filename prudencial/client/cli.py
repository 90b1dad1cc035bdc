"""``python -m prudencial.client``: the agent's command line (pt-BR; ``--lang en`` for English).

Exit status: 0 done (accepted, or nothing to judge); 1 rejected or refused by field and row;
2 configuration or usage; 3 attestation refused (nothing encrypted); 4 the platform refused;
5 the platform could not be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .config import (
    AWS_ROOT,
    CONFIG_NAME,
    ClientConfig,
    TrustPolicy,
    config_dir,
    load_config,
    save_config,
)
from .errors import (
    ApiError,
    AttestationRefused,
    ClientError,
    ConfigError,
    ConnectionFailed,
    PayloadError,
    ReplyKeyError,
)
from .i18n import choose, resolve_language, set_language, tr
from .session import Client, Submitted, is_final

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_ATTESTATION, EXIT_API, EXIT_CONNECTION = range(6)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):  # noqa: ANN001
        if prefix is None:
            prefix = choose("uso: ", "usage: ")
        return super().add_usage(usage, actions, groups, prefix)


def _titles(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser._positionals.title = choose("argumentos", "positional arguments")
    parser._optionals.title = choose("opções", "options")
    return parser


def _common(*, suppress: bool) -> argparse.ArgumentParser:
    c = choose
    default = {"default": argparse.SUPPRESS} if suppress else {}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar=c("ARQUIVO", "FILE"),
        **default,
        help=c(
            f"arquivo de configuração (padrão: {config_dir() / CONFIG_NAME})",
            f"config file (default: {config_dir() / CONFIG_NAME})",
        ),
    )
    common.add_argument(
        "--base-url", metavar="URL", **default, help=c("endereço da plataforma", "platform address")
    )
    common.add_argument(
        "--lang",
        choices=["pt-BR", "en"],
        **default,
        help=c("idioma das mensagens", "message language"),
    )
    common.add_argument(
        "--json", action="store_true", **default, help=c("saída em JSON", "JSON output")
    )

    return common


def _parser() -> argparse.ArgumentParser:
    c = choose
    common = _common(suppress=False)
    # Repeated after the command too; SUPPRESS keeps a subcommand's unset default from
    # overwriting the value given before the command.
    after = _common(suppress=True)

    parser = argparse.ArgumentParser(
        prog="python -m prudencial.client",
        description=c(
            "Cliente do agente da Plataforma de Monitoramento Prudencial: verifica a atestação "
            "do enclave, cifra no computador do agente e envia apenas o envelope (JWE).",
            "Agent client of the Prudential Monitoring Platform: verifies the enclave's "
            "attestation, encrypts on the agent's machine and sends only the envelope (JWE).",
        ),
        formatter_class=_Formatter,
        add_help=False,
        parents=[common],
    )
    parser.add_argument(
        "-h", "--help", action="help", help=c("mostra esta ajuda", "show this help")
    )
    _titles(parser)
    sub = parser.add_subparsers(dest="command", metavar=c("COMANDO", "COMMAND"))

    def command(name: str, pt: str, en: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=c(pt, en),
            description=c(pt, en),
            parents=[after],
            formatter_class=_Formatter,
            add_help=False,
        )
        p.add_argument("-h", "--help", action="help", help=c("mostra esta ajuda", "show this help"))
        return _titles(p)

    init = command(
        "init",
        "grava o client.toml: endereço, raiz de confiança e PCRs publicados",
        "write client.toml: address, trust root and published PCRs",
    )
    init.add_argument(
        "--trust-root",
        default=AWS_ROOT,
        help=c(
            "'aws' (raiz AWS Nitro embutida) ou o caminho de um PEM",
            "'aws' (packaged AWS Nitro root) or the path of a PEM",
        ),
    )
    init.add_argument("--root-sha256", help=c("SHA-256 da raiz (hex)", "SHA-256 of the root (hex)"))
    init.add_argument(
        "--pcr",
        action="append",
        default=[],
        metavar="N=HEX",
        help=c("PCR publicado (repita: 0, 1, 2)", "published PCR (repeat: 0, 1, 2)"),
    )
    init.add_argument("--max-age", type=int, default=300, help=c("idade máxima (s)", "max age (s)"))
    init.add_argument("--no-verify-tls", action="store_true", help=argparse.SUPPRESS)
    init.add_argument("--force", action="store_true", help=c("sobrescreve", "overwrite"))

    login = command("login", "obtém e guarda o token (0600)", "obtain and store the token (0600)")
    login.add_argument("--username", "-u", help=c("usuário", "username"))
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help=c("lê a senha da entrada padrão", "read the password from standard input"),
    )
    command("logout", "apaga o token guardado", "delete the stored token")

    att = command(
        "attestation",
        "busca e verifica a atestação do enclave (nonce próprio)",
        "fetch and verify the enclave's attestation (own nonce)",
    )
    att.add_argument(
        "--export",
        metavar=c("ARQUIVO", "FILE"),
        help=c(
            "grava a chave verificada (JWKS) para outro programa (ex.: o exemplo Node)",
            "write the verified key (JWKS) for another program (e.g. the Node example)",
        ),
    )

    submit = command(
        "submit",
        "cifra e envia o portfólio ou as contrapartes de um agente",
        "encrypt and submit one agent's portfolio or counterparties",
    )
    submit.add_argument("kind", choices=["portfolio", "counterparties"])
    submit.add_argument("file", metavar=c("ARQUIVO", "FILE"), help="FILE.json | FILE.xlsx")
    submit.add_argument("--week", required=True, help=c("código da semana", "week code"))
    submit.add_argument(
        "--agent", required=True, help=c("id, sigla ou CNPJ do agente", "agent id, acronym or CNPJ")
    )
    submit.add_argument(
        "--reply-key",
        metavar=c("ARQUIVO", "FILE"),
        help=c(
            "chave de resposta (padrão: reply-key.json ao lado do client.toml)",
            "reply key (default: reply-key.json beside client.toml)",
        ),
    )
    submit.add_argument(
        "--no-reply-key",
        action="store_true",
        help=c(
            "envia o portfólio sem prd_reply: o detalhamento do FA não poderá ser lido",
            "send the portfolio without prd_reply: the FA's breakdown will not be readable",
        ),
    )
    _send_options(submit)

    batch = command(
        "batch",
        "cifra e envia um arquivo com vários agentes (JSON ou XLSX)",
        "encrypt and submit a file covering many agents (JSON or XLSX)",
    )
    batch.add_argument("file", metavar=c("ARQUIVO", "FILE"), help="FILE.json | FILE.xlsx")
    batch.add_argument("--week", required=True, help=c("código da semana", "week code"))
    batch.add_argument(
        "--agents",
        help=c(
            "agentes que o arquivo cobre (id/sigla, vírgulas); padrão: lidos do arquivo",
            "agents the file covers (id/acronym, commas); default: read from the file",
        ),
    )
    _send_options(batch, check=False)

    status = command(
        "status",
        "acompanha envios até o resultado final e mostra os erros por campo e linha",
        "follow submissions until final and show the errors by field and row",
    )
    status.add_argument("--week", help=c("código da semana", "week code"))
    status.add_argument("--agent", help=c("id, sigla ou CNPJ", "id, acronym or CNPJ"))
    status.add_argument("--submission", help=c("id do envio", "submission id"))
    status.add_argument("--batch", help=c("id do lote", "batch id"))
    status.add_argument("--once", action="store_true", help=c("não espera", "do not wait"))
    status.add_argument("--timeout", type=float, default=300.0)

    progress = command("progress", "andamento da semana por agente", "the week's progress by agent")
    progress.add_argument("--week", required=True)

    templates = command(
        "templates",
        "baixa os modelos XLSX da semana",
        "download the week's XLSX templates",
    )
    templates.add_argument("--week", required=True)
    templates.add_argument("--kind", choices=["portfolio", "counterparties", "all"], default="all")
    templates.add_argument("--out", default=".", help=c("diretório", "directory"))

    schemas = command("schemas", "baixa os JSON Schemas", "download the JSON Schemas")
    schemas.add_argument("--kind", choices=["portfolio", "counterparties", "all"], default="all")
    schemas.add_argument(
        "--week", help=c("com os tipos de energia da semana", "with the week's energy types")
    )
    schemas.add_argument("--out", default=".", help=c("diretório", "directory"))

    lookup = command(
        "lookup", "procura agentes registrados (sigla ou CNPJ)", "search registered agents"
    )
    lookup.add_argument("query")

    fa = command(
        "fa-preview",
        "calcula aqui o FA do próprio portfólio com os parâmetros publicados; nada é enviado",
        "compute here the portfolio's own FA with the published parameters; nothing is sent",
    )
    fa.add_argument("file", metavar=c("ARQUIVO", "FILE"), help="FILE.json | FILE.xlsx")
    fa.add_argument("--week", required=True)
    fa.add_argument(
        "--agent", help=c("sigla (arquivo com vários agentes)", "acronym (multi-agent file)")
    )
    fa.add_argument(
        "--parameters",
        metavar=c("ARQUIVO", "FILE"),
        help=c(
            "parâmetros da semana em arquivo (não consulta a plataforma)",
            "week parameters from a file (does not ask the platform)",
        ),
    )
    _trade_network_parser(command)
    _reply_key_parser(command, after)
    _leverage_parser(command, after)
    return parser


def _send_options(p: argparse.ArgumentParser, *, check: bool = True) -> None:
    c = choose
    if check:
        p.add_argument(
            "--no-check",
            action="store_true",
            help=c(
                "não valida localmente antes de enviar (o enclave valida de todo modo)",
                "skip the local validation before sending (the enclave validates anyway)",
            ),
        )
    p.add_argument("--idempotency-key", help=c("chave de idempotência", "idempotency key"))
    p.add_argument(
        "--no-wait", action="store_true", help=c("não espera o resultado", "do not wait")
    )
    p.add_argument("--timeout", type=float, default=300.0)


# --- output --------------------------------------------------------------------------------------


class Out:
    def __init__(
        self, as_json: bool, stream: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.err = err or sys.stderr

    def warn(self, text: str) -> None:
        """On stderr, in JSON mode too: what the user must see whatever they parse."""
        print(text, file=self.err)

    def line(self, text: str = "") -> None:
        if not self.as_json:
            print(text, file=self.stream)

    def data(self, value: Any) -> None:
        if self.as_json:
            print(json.dumps(value, ensure_ascii=False, indent=2, default=str), file=self.stream)


def format_errors(errors: Sequence[dict[str, Any]]) -> list[str]:
    """Errors by field and row as aligned lines (values are never in them)."""
    if not errors:
        return []
    head = (choose("linha", "row"), choose("campo", "field"), choose("regra", "rule"))
    rows = [
        (
            "—" if e.get("row") is None else str(e.get("row")),
            str(e.get("field") or "—"),
            str(e.get("rule") or e.get("message") or ""),
        )
        for e in errors
    ]
    w0 = max(len(head[0]), *(len(r[0]) for r in rows))
    w1 = max(len(head[1]), *(len(r[1]) for r in rows))
    lines = [f"  {head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]}"]
    lines += [f"  {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}" for r in rows]
    return lines


def _status_label(status: Any) -> str:
    labels = {
        "received": ("recebido (validando no enclave)", "received (validating in the enclave)"),
        "accepted": ("aceito", "accepted"),
        "rejected": ("rejeitado", "rejected"),
        "error": ("erro", "error"),
    }
    pt, en = labels.get(str(status), (str(status), str(status)))
    return choose(pt, en)


def _bar(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if not os.environ.get("PRUDENCIAL_PROGRESS") else False,
        leave=False,
        **kwargs,
    )


# --- commands ------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    config = load_config(args.config)
    return Client(config, base_url=args.base_url)


def cmd_init(args: argparse.Namespace, out: Out) -> int:
    base_url = args.base_url or os.environ.get("PRUDENCIAL_BASE_URL")
    if not base_url:
        raise ConfigError("no_base_url")
    pcrs = {}
    for item in args.pcr:
        index, _, value = item.partition("=")
        pcrs[index.strip()] = value.strip()
    trust = TrustPolicy.from_mapping(
        {
            "trust_root": args.trust_root
            if args.trust_root == AWS_ROOT
            else str(Path(args.trust_root).expanduser().resolve()),
            "root_sha256": args.root_sha256,
            "pcrs": pcrs,
            "max_age_seconds": args.max_age,
        }
    )
    target = Path(args.config).expanduser() if args.config else config_dir() / CONFIG_NAME
    if target.exists() and not args.force:
        out.line(choose(f"{target} já existe (use --force).", f"{target} exists (use --force)."))
        return EXIT_CONFIG
    config = ClientConfig(
        base_url=base_url.rstrip("/"),
        trust=trust,
        directory=target.parent,
        path=target,
        verify_tls=not args.no_verify_tls,
        language=args.lang,
    )
    save_config(config, target)
    out.line(choose(f"Configuração gravada em {target}", f"Configuration written to {target}"))
    out.data({"config": str(target)})
    return EXIT_OK


def cmd_login(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    username = args.username or input(choose("Usuário: ", "Username: "))
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(choose("Senha: ", "Password: "))
    client.login(username, password)
    out.line(
        choose(
            f"Login feito; token guardado em {client.config.token_path} (0600).",
            f"Logged in; token stored in {client.config.token_path} (0600).",
        )
    )
    out.data({"token_path": str(client.config.token_path)})
    return EXIT_OK


def cmd_logout(args: argparse.Namespace, out: Out) -> int:
    removed = _client(args).logout()
    out.line(
        choose("Token apagado.", "Token deleted.") if removed else choose("Sem token.", "No token.")
    )
    return EXIT_OK


def cmd_attestation(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    att = client.attestation()
    exported = att.export()
    if args.export:
        Path(args.export).write_text(json.dumps(exported, indent=2) + "\n", "utf-8")
    out.line(choose("Atestação verificada:", "Attestation verified:"))
    out.line(f"  module_id: {att.module_id}")
    out.line(f"  {choose('emitida em', 'issued at')}: {att.timestamp.isoformat()}")
    out.line(f"  kid ({choose('envelope', 'envelope')}): {att.kid}")
    out.line(f"  signing_kid: {att.signing_kid}")
    for index, value in sorted(att.pcrs.items()):
        out.line(f"  PCR{index}: {value}")
    if args.export:
        out.line(
            choose(
                f"Chave verificada gravada em {args.export}",
                f"Verified key written to {args.export}",
            )
        )
    out.data(exported)
    return EXIT_OK


def _print_record(record: dict[str, Any], out: Out) -> int:
    status = record.get("status")
    out.line(f"{choose('situação', 'status')}: {_status_label(status)}")
    if record.get("verdict_verified") is False and status == "accepted":
        out.line(
            choose(
                "  (assinatura do veredito não verificada)", "  (verdict signature not verified)"
            )
        )
    errors = record.get("errors") or []
    for line in format_errors(errors):
        out.line(line)
    names = {
        a.get("id"): a.get("acronym") for a in record.get("agents") or [] if isinstance(a, dict)
    }
    for sub in record.get("submissions") or []:  # a batch: one submission per agent and kind
        if not isinstance(sub, dict):
            continue
        who = names.get(sub.get("agent"), sub.get("agent"))
        out.line(f"  {who} {sub.get('kind')}: {_status_label(sub.get('status'))}")
        for line in format_errors(sub.get("errors") or []):
            out.line("  " + line)
    if is_final(status) and status != "accepted":
        return EXIT_REJECTED
    if any(
        isinstance(sub, dict) and is_final(sub.get("status")) and sub.get("status") != "accepted"
        for sub in record.get("submissions") or []
    ):
        return EXIT_REJECTED
    return EXIT_OK


def _follow(client: Client, submitted: Submitted, out: Out, timeout: float) -> int:
    """Poll until final with a progress bar on stderr: a batch counts its submissions (one per
    agent and kind) as their verdicts arrive; a single submission is one step."""
    batch = submitted.kind == "batch"
    total = max(1, len(submitted.agent_ids)) if batch else 1
    bar = _bar(total, choose("validando", "validating"), unit=choose("envio", "submission"))

    def update(record: dict[str, Any]) -> None:
        if batch:
            counts = record.get("counts") if isinstance(record.get("counts"), dict) else {}
            made = counts.get("submissions") or 0
            if made and made != bar.total:
                bar.total = made
            done = sum(v for k, v in counts.items() if is_final(k))
            if is_final(record.get("status")) and not made:
                done = bar.total  # rejected whole: nothing more will come
        else:
            done = 1 if is_final(record.get("status")) else 0
        bar.n = min(done, bar.total or done)
        bar.refresh()

    try:
        record = client.wait(submitted, timeout=timeout, on_update=update)
    finally:
        bar.close()
    out.data(record)
    return _print_record(record, out)


def _upload_bar(size_hint: int) -> Any:
    return _bar(size_hint, choose("enviando", "uploading"), unit="B", unit_scale=True)


def cmd_submit(args: argparse.Namespace, out: Out) -> int:
    from . import envelope

    client = _client(args)
    file = envelope.read_file(args.file)
    reply = _reply_for_envelope(client, args, out)
    bar = _upload_bar(int(len(file.data) * 1.34) + 1024)
    try:
        submitted = client.submit(
            args.kind,
            week=args.week,
            agent=args.agent,
            file=file,
            check=not args.no_check,
            idempotency_key=args.idempotency_key,
            progress=bar.update,
            reply=reply,
        )
    finally:
        bar.close()
    if submitted.reply_kid:
        out.line(
            choose(
                f"Chave de resposta (prd_reply) no envelope: kid {submitted.reply_kid}",
                f"Reply key (prd_reply) in the envelope: kid {submitted.reply_kid}",
            )
        )
    return _report_submitted(client, submitted, args, out)


def _reply_for_envelope(
    client: Client, args: argparse.Namespace, out: Out
) -> dict[str, str] | bool:
    """The public reply key a portfolio's envelope carries (False: none). Without a key the
    agent is told once, on stderr, that the breakdown will not be readable."""
    if args.kind != "portfolio" or args.no_reply_key:
        return False
    path = Path(args.reply_key).expanduser() if args.reply_key else client.reply_key_path()
    public = client.reply_public(path)
    if public is None:
        out.warn(tr("reply.none_for_envelope", path=path))
        return False
    return public


def _report_submitted(
    client: Client, submitted: Submitted, args: argparse.Namespace, out: Out
) -> int:
    out.line(
        choose(
            f"Enviado: id {submitted.id}, versão {submitted.answer.get('version', '—')}, "
            f"kid {submitted.kid}",
            f"Submitted: id {submitted.id}, version {submitted.answer.get('version', '—')}, "
            f"kid {submitted.kid}",
        )
    )
    out.line(
        f"{choose('recibo (SHA-256 do envelope)', 'receipt (SHA-256 of the envelope)')}: {submitted.receipt}"
    )
    if not submitted.receipt_ok:
        out.line(
            tr(
                "payload.receipt_mismatch",
                got=submitted.answer.get("receipt"),
                expected=submitted.receipt,
            )
        )
    if args.no_wait:
        out.data({**submitted.answer, "sent_receipt": submitted.receipt})
        return EXIT_OK
    return _follow(client, submitted, out, args.timeout)


def cmd_batch(args: argparse.Namespace, out: Out) -> int:
    from . import envelope

    client = _client(args)
    file = envelope.read_file(args.file, batch=True)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()] if args.agents else None
    records = (
        [client.resolve_agent(a) for a in agents]
        if agents
        else client.batch_agents(args.week, file)
    )
    out.line(
        choose("Agentes declarados: ", "Declared agents: ")
        + ", ".join(str(a.get("acronym")) for a in records)
    )
    bar = _upload_bar(int(len(file.data) * 1.34) + 1024)
    try:
        submitted = client.submit_batch(
            week=args.week,
            file=file,
            agents=[a["id"] for a in records],
            idempotency_key=args.idempotency_key,
            progress=bar.update,
        )
    finally:
        bar.close()
    return _report_submitted(client, submitted, args, out)


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    if args.batch:
        fake = Submitted(
            {"id": args.batch, "status": "received"}, "batch", args.week or "", (), "", "", ""
        )
        if args.once:
            record = client.batch(args.batch)
            out.data(record)
            return _print_record(record, out)
        return _follow(client, fake, out, args.timeout)
    if not (args.week and args.agent):
        out.line(
            choose("Informe --batch, ou --week e --agent.", "Give --batch, or --week and --agent.")
        )
        return EXIT_CONFIG
    agent = client.resolve_agent(args.agent)
    if args.submission:
        fake = Submitted(
            {"id": args.submission, "status": "received"},
            "portfolio",
            args.week,
            (int(agent["id"]),),
            "",
            "",
            "",
        )
        if args.once:
            record = client.submission(args.week, agent["id"], args.submission)
            out.data(record)
            return _print_record(record, out)
        return _follow(client, fake, out, args.timeout)
    items = client.submissions(args.week, agent["id"])
    out.data(items)
    worst = EXIT_OK
    for item in items:
        out.line(
            f"#{item.get('id')} {item.get('kind')} v{item.get('version')} "
            f"{item.get('channel', '')} {item.get('submitted_at', '')} "
            f"{_status_label(item.get('status'))}{' *' if item.get('is_current') else ''}"
        )
        for line in format_errors(item.get("errors") or []):
            out.line("  " + line)
    return worst


def cmd_progress(args: argparse.Namespace, out: Out) -> int:
    record = _client(args).progress(args.week)
    out.data(record)
    for kind in ("portfolio", "counterparties"):
        part = record.get(kind) or {}
        out.line(f"{kind}: {part.get('done', 0)}/{part.get('total', 0)}")
    for agent in record.get("agents") or []:
        states = []
        for kind in ("portfolio", "counterparties"):
            entry = agent.get(kind)
            states.append(f"{kind}={_status_label(entry.get('status')) if entry else '—'}")
        out.line(f"  {agent.get('acronym')}: " + " ".join(states))
    return EXIT_OK


def cmd_templates(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    kinds = ["portfolio", "counterparties"] if args.kind == "all" else [args.kind]
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        path = folder / f"{args.week}-{kind}.xlsx"
        path.write_bytes(client.template(args.week, kind))
        written.append(str(path))
        out.line(path)
    out.data({"files": written})
    return EXIT_OK


def cmd_schemas(args: argparse.Namespace, out: Out) -> int:
    client = _client(args)
    kinds = ["portfolio", "counterparties"] if args.kind == "all" else [args.kind]
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        path = folder / f"{kind}.schema.json"
        path.write_text(
            json.dumps(client.schema(kind, args.week), ensure_ascii=False, indent=2) + "\n", "utf-8"
        )
        written.append(str(path))
        out.line(path)
    out.data({"files": written})
    return EXIT_OK


def cmd_lookup(args: argparse.Namespace, out: Out) -> int:
    found = _client(args).lookup(args.query)
    out.data(found)
    for item in found:
        out.line(f"{item.get('acronym'):<12} {item.get('cnpj'):<20} {item.get('legal_name')}")
    return EXIT_OK


def cmd_fa_preview(args: argparse.Namespace, out: Out) -> int:
    if args.parameters:
        from .envelope import parse_json_bytes

        parameters = parse_json_bytes(Path(args.parameters).read_bytes())
        if "parameters" in parameters and "code" in parameters:  # a saved GET /weeks/{code}/
            from .preview import engine_parameters

            parameters = engine_parameters(parameters)
        client = None
    else:
        client = _client(args)
        parameters = client.week_parameters(args.week)
    if client is None:
        from . import preview
        from .envelope import read_file

        if str(parameters.get("week")) != args.week:
            raise PayloadError("bad_parameters", reason=f"parameters.week != {args.week}")
        previews, errors = preview.preview_file(read_file(args.file), parameters, agent=args.agent)
    else:
        previews, errors = client.fa_preview(
            args.week, args.file, parameters=parameters, agent=args.agent
        )
    out.data({"errors": errors, "previews": [p.to_dict() for p in previews]})
    out.line(
        choose(
            "Calculado neste computador; nada foi enviado.",
            "Computed on this machine; nothing was sent.",
        )
    )
    status = EXIT_OK
    if errors:
        out.line(tr("payload.invalid", count=len(errors)))
        for line in format_errors(errors):
            out.line(line)
        status = EXIT_REJECTED
    for p in previews:
        who = (p.agent or {}).get("acronym", "?")
        if p.errors:
            out.line(f"{who}: " + tr("payload.invalid", count=len(p.errors)))
            for line in format_errors(p.errors):
                out.line(line)
            status = EXIT_REJECTED
            continue
        if p.fa is None:
            out.line(f"{who}: FA — ({p.reason})")
            continue
        out.line(f"{who} {p.week}: FA = {p.fa:.4f}   FA_risco = {p.fa_risk:.4f}")
        f = p.figures
        out.line(
            f"  VaR_total = {f['var_total']:,.2f}  RWA = {f['rwa']:,.2f}  "
            f"RES_FIN = {f['res_fin']:,.2f}  PLA = {f['pla']:,.2f}"
        )
    return status


# --- trade-network (CCEE staff; admin-export helper) -----------------------------------------------


def _trade_network_parser(command: Any) -> None:
    c = choose
    tn = command(
        "trade-network",
        "rede de contratos da semana (equipe da CCEE)",
        "the week's trade network (CCEE staff)",
    )
    tn_sub = tn.add_subparsers(dest="trade_network_command", metavar=c("AÇÃO", "ACTION"))
    send = tn_sub.add_parser(
        "send",
        help=c(
            "converte (JSON, CSV ou XLSX), cifra e envia a rede de contratos",
            "convert (JSON, CSV or XLSX), encrypt and send the trade network",
        ),
        formatter_class=_Formatter,
    )
    _titles(send)
    send.add_argument("file", metavar=c("ARQUIVO", "FILE"), help="FILE.json | FILE.csv | FILE.xlsx")
    send.add_argument("--week", required=True, help=c("código da semana", "week code"))
    send.add_argument(
        "--correction",
        action="store_true",
        help=c(
            "para a correção de uma semana já calculada", "for the correction of a computed week"
        ),
    )
    send.add_argument(
        "--part-size",
        type=int,
        default=DEFAULT_TRADE_NETWORK_PART_SIZE,
        help=c(
            "contratos por parte: um arquivo maior vai em partes de um conjunto (padrão %(default)s)",
            "contracts per part: a larger file is sent as the parts of one set (default %(default)s)",
        ),
    )
    _send_options(send, check=False)


#: Contracts in one part of a trade network sent in parts (well under one envelope's limit).
DEFAULT_TRADE_NETWORK_PART_SIZE = 30_000


def _trade_network_json(data: bytes) -> Any:
    """A JSON trade network read as strictly as an agent's payload (``parse_json_bytes``), but
    with room for a whole network's values (8 per contract, as the enclave counts them)."""
    from enclave_bridge.wire.protocol import JsonRefused, strict_json_loads
    from prudencial.domain import formats

    from .envelope import _refuse_constant, parse_json_bytes

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not_utf8") from None
    try:
        return strict_json_loads(
            text,
            max_values=8 * formats.MAX_TRADE_NETWORK_CONTRACTS + 64,
            parse_constant=_refuse_constant,
        )
    except JsonRefused as exc:
        raise PayloadError("json_refused", rule=exc.rule) from None
    except ValueError:
        return parse_json_bytes(data)  # raises, naming the line and the column


def trade_network_payload(path: str | Path, *, week: str) -> dict[str, Any]:
    """The file as the ``prudencial/contracts/v1`` JSON: a JSON file as it is, a CSV (``;`` or
    ``,``) or XLSX table (first sheet, header row ``formats.CONTRACT_COLUMNS``) through the
    domain's converter; then the domain's own checks. PayloadError names field, row and rule."""
    import csv
    import io

    from prudencial.domain import formats

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PayloadError("unreadable", path=str(path), reason=exc.strerror or "") from None
    if data.startswith(b"PK\x03\x04"):
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        header = [str(h or "").strip() for h in (values[0] if values else [])]
        rows = [dict(zip(header, row, strict=False)) for row in values[1:] if any(row)]
        payload, errors = formats.contracts_from_rows(rows, week=week)
    elif path.suffix.lower() == ".csv":
        text = data.decode("utf-8-sig")
        delimiter = ";" if text.split("\n", 1)[0].count(";") else ","
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
        payload, errors = formats.contracts_from_rows(rows, week=week)
    else:
        payload, errors = _trade_network_json(data.removeprefix(b"\xef\xbb\xbf")), []
    if isinstance(payload, dict):
        payload.pop("part", None)  # the parts are the client's to make (trade_network_parts)
    errors = errors or formats.contracts_errors(
        payload, week=week, max_contracts=formats.MAX_TRADE_NETWORK_CONTRACTS
    )
    if errors:
        raise PayloadError("invalid", errors=errors, count=len(errors))
    return payload


def trade_network_parts(
    payload: dict[str, Any], *, part_size: int, set_id: str | None = None
) -> list[dict[str, Any]]:
    """The payload as it is sent: itself when it has at most ``part_size`` contracts, else
    parts of at most ``part_size`` contracts in file order, each a ``prudencial/contracts/v1``
    document with ``part`` ``{set, index, count}`` (one generated set id for all)."""
    import uuid

    from prudencial.domain import formats

    contracts = payload["contracts"]
    base = {k: v for k, v in payload.items() if k not in ("contracts", "part")}
    if len(contracts) <= part_size:
        return [{**base, "contracts": contracts}]
    count = -(-len(contracts) // part_size)
    if count > formats.MAX_TRADE_NETWORK_PARTS:
        raise PayloadError(
            "invalid",
            errors=[
                {
                    "field": "contracts",
                    "row": None,
                    "rule": f"must fit in {formats.MAX_TRADE_NETWORK_PARTS} parts of at most "
                    f"{part_size} contracts (use a larger --part-size)",
                }
            ],
            count=1,
        )
    set_id = set_id or uuid.uuid4().hex
    return [
        {
            **base,
            "part": {"set": set_id, "index": i + 1, "count": count},
            "contracts": contracts[i * part_size : (i + 1) * part_size],
        }
        for i in range(count)
    ]


def cmd_trade_network(args: argparse.Namespace, out: Out) -> int:
    import time
    import uuid

    from prudencial.domain import formats

    from . import envelope
    from .api import _segment

    if getattr(args, "trade_network_command", None) != "send":
        out.line(
            choose(
                "Use: trade-network send --week CÓDIGO ARQUIVO",
                "Use: trade-network send --week CODE FILE",
            )
        )
        return EXIT_CONFIG
    part_size = int(getattr(args, "part_size", DEFAULT_TRADE_NETWORK_PART_SIZE))
    if not 0 < part_size <= formats.MAX_TRADE_CONTRACTS:
        out.line(
            choose(
                f"--part-size deve estar entre 1 e {formats.MAX_TRADE_CONTRACTS}",
                f"--part-size must be 1 to {formats.MAX_TRADE_CONTRACTS}",
            )
        )
        return EXIT_CONFIG
    payload = trade_network_payload(args.file, week=args.week)  # refused here: nothing sent
    documents = trade_network_parts(payload, part_size=part_size)
    client = _client(args)
    path = f"weeks/{_segment(args.week)}/trade-network/"
    if len(documents) > 1:
        part_set = documents[0]["part"]["set"]
        out.line(
            choose(
                f"Rede em {len(documents)} partes, conjunto {part_set}",
                f"Network in {len(documents)} parts, set {part_set}",
            )
        )
    answers = []
    for i, document in enumerate(documents):
        jwe = client.encrypt(document)
        key = (
            (args.idempotency_key if len(documents) == 1 else f"{args.idempotency_key}-{i + 1}")
            if args.idempotency_key
            else str(uuid.uuid4())
        )
        body: dict[str, Any] = {"jwe": jwe, "correction": bool(args.correction)}
        part = document.get("part")
        if part is not None:
            body.update(part_set=part["set"], part_index=part["index"], part_count=part["count"])
        answer = client._post_with_retries(
            lambda body=body, key=key: client.api.request(
                "POST", path, json_body=body, headers={"Idempotency-Key": key}
            ).json()
        )
        answers.append(answer)
        receipt = envelope.receipt(jwe)
        label = "" if part is None else f" ({part['index']}/{part['count']})"
        out.line(
            choose(
                f"Enviada: rede {answer.get('id')}{label}, {len(document['contracts'])} contratos",
                f"Sent: network {answer.get('id')}{label}, {len(document['contracts'])} contracts",
            )
        )
        out.line(f"{choose('recibo', 'receipt')}: {receipt}")
        if answer.get("receipt") != receipt:
            out.line(tr("payload.receipt_mismatch", got=answer.get("receipt"), expected=receipt))
    if args.no_wait:
        out.data(answers[0] if len(answers) == 1 else answers)
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    ids = [a.get("id") for a in answers]
    while True:
        rows = client.api.get_json(path)
        rows = rows["results"] if isinstance(rows, dict) and "results" in rows else rows
        found = {r.get("id"): r for r in rows if r.get("id") in ids}
        done = all(found.get(i, {}).get("status") not in (None, "pending") for i in ids)
        if done or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    status = EXIT_OK
    for answer in answers:
        row = found.get(answer.get("id")) or {}
        out.data(row or answer)
        out.line(
            f"{_status_label(row.get('status', 'received'))}"
            + (
                f" ({(row.get('counts') or {}).get('contracts')} {choose('contratos', 'contracts')})"
                if row.get("status") == "accepted"
                else ""
            )
        )
        for line in format_errors(row.get("errors") or []):
            out.line(line)
        if row.get("status") == "accepted":
            continue
        worse = (
            EXIT_REJECTED
            if row.get("status") in ("rejected", "error", "unverified")
            else EXIT_CONNECTION
        )
        status = worse if status == EXIT_OK else status
    return status


# --- reply-key: the key the enclave seals the breakdown to ----------------------------------------


def _sub_action(
    sub: Any, after: argparse.ArgumentParser, name: str, pt: str, en: str
) -> argparse.ArgumentParser:
    """A second-level command that takes the common options (--json, --lang…) after it too."""
    p = sub.add_parser(
        name,
        help=choose(pt, en),
        description=choose(pt, en),
        parents=[after],
        formatter_class=_Formatter,
        add_help=False,
    )
    p.add_argument(
        "-h", "--help", action="help", help=choose("mostra esta ajuda", "show this help")
    )
    return _titles(p)


def _reply_key_parser(command: Any, after: argparse.ArgumentParser) -> None:
    c = choose
    rk = command(
        "reply-key",
        "chave de resposta: a chave EC P-256 à qual o enclave cifra o detalhamento do FA",
        "reply key: the EC P-256 key the enclave seals the FA's breakdown to",
    )
    rk_sub = rk.add_subparsers(dest="reply_key_command", metavar=c("AÇÃO", "ACTION"))
    init = _sub_action(
        rk_sub,
        after,
        "init",
        "cria a chave (0600) e mostra a impressão digital",
        "create the key (0600) and show its thumbprint",
    )
    show = _sub_action(
        rk_sub, after, "show", "mostra a chave pública (JWK)", "show the public key (JWK)"
    )
    for p in (init, show):
        p.add_argument(
            "--path",
            metavar=c("ARQUIVO", "FILE"),
            help=c(
                "arquivo da chave (padrão: reply-key.json ao lado do client.toml)",
                "key file (default: reply-key.json beside client.toml)",
            ),
        )
    init.add_argument(
        "--force",
        action="store_true",
        help=c(
            "substitui a chave existente (os detalhamentos antigos ficam ilegíveis)",
            "replace the existing key (older breakdowns become unreadable)",
        ),
    )


def _reply_path(args: argparse.Namespace, name: str = "path") -> Path:
    given = getattr(args, name, None)
    if given:
        return Path(given).expanduser()
    from .reply import default_path

    return default_path(load_config(args.config))


def cmd_reply_key(args: argparse.Namespace, out: Out) -> int:
    from . import reply

    action = getattr(args, "reply_key_command", None)
    if action not in ("init", "show"):
        out.line(
            choose("Use: reply-key init | reply-key show", "Use: reply-key init | reply-key show")
        )
        return EXIT_CONFIG
    path = _reply_path(args)
    if action == "init":
        key = reply.create(path, force=args.force)
        thumbprint = reply.thumbprint(key)
        out.line(
            choose(
                f"Chave de resposta criada em {path} (0600); nunca sai deste computador.",
                f"Reply key created in {path} (0600); it never leaves this machine.",
            )
        )
        out.line(f"{choose('impressão digital (RFC 7638)', 'thumbprint (RFC 7638)')}: {thumbprint}")
        out.data({"path": str(path), "thumbprint": thumbprint})
        return EXIT_OK
    key = reply.load(path)
    if key is None:
        raise ReplyKeyError("absent", path=str(path))
    public = reply.public_jwk(key)
    thumbprint = reply.thumbprint(public)
    out.line(json.dumps(public, indent=2))
    out.line(f"{choose('impressão digital (RFC 7638)', 'thumbprint (RFC 7638)')}: {thumbprint}")
    out.data({"path": str(path), "thumbprint": thumbprint, "jwk": public})
    return EXIT_OK


# --- leverage: the agent's result of the week's closing ------------------------------------------


def _leverage_parser(command: Any, after: argparse.ArgumentParser) -> None:
    c = choose
    lev = command(
        "leverage",
        "resultado do fator de alavancagem: ver, enviar à CCEE, cancelar, histórico, rede",
        "leverage factor result: show, send to CCEE, cancel, history, network",
    )
    sub = lev.add_subparsers(dest="leverage_command", metavar=c("AÇÃO", "ACTION"))
    agent_help = c("id, sigla ou CNPJ do agente", "agent id, acronym or CNPJ")
    week_help = c("código da semana", "week code")
    show = _sub_action(
        sub,
        after,
        "show",
        "mostra o resultado e abre aqui o detalhamento com a chave de resposta",
        "show the result and open the breakdown here with the reply key",
    )
    send = _sub_action(
        sub,
        after,
        "send",
        "envia o resultado à CCEE (definitivo)",
        "send the result to CCEE (final)",
    )
    cancel = _sub_action(
        sub, after, "cancel", "cancela o resultado, com motivo", "cancel the result, with a reason"
    )
    network = _sub_action(
        sub,
        after,
        "network",
        "indicadores de rede do agente e comunidades da semana",
        "the agent's network indicators and the week's communities",
    )
    history = _sub_action(sub, after, "history", "FA semana a semana", "FA week by week")
    for p in (show, send, cancel, network):
        p.add_argument("week", metavar=c("SEMANA", "WEEK"), help=week_help)
    for p in (show, send, cancel, network, history):
        p.add_argument("--agent", required=True, help=agent_help)
    show.add_argument(
        "--reply-key",
        metavar=c("ARQUIVO", "FILE"),
        help=c(
            "chave de resposta (padrão: reply-key.json ao lado do client.toml)",
            "reply key (default: reply-key.json beside client.toml)",
        ),
    )
    send.add_argument(
        "--yes", "-y", action="store_true", help=c("não pede confirmação", "do not ask to confirm")
    )
    cancel.add_argument("--reason", required=True, help=c("motivo", "reason"))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}f}"


def _brl(value: Any) -> str:
    return _num(value, 2)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Aligned columns: text to the left, the rest (numbers) to the right."""
    widths = [len(h) for h in head]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    # A column of numbers is right-aligned, its heading too.
    right = [i > 0 and bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            f"{cell:>{widths[i]}}" if right[i] else f"{cell:<{widths[i]}}"
            for i, cell in enumerate(cells)
        ]
        return indent + "  ".join(parts).rstrip()

    return [line(head)] + [line(r) for r in rows]


def _numeric(cell: str) -> bool:
    return cell == "—" or cell.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


_RESULT_STATUS = {
    "computed": ("calculado", "computed"),
    "no_fa": ("sem FA (sem base de cálculo)", "no FA (no basis to compute it)"),
    "rejected": ("envio recusado", "submission refused"),
    "error": ("erro no cálculo", "computation error"),
    "missing": ("sem portfólio aceito", "no accepted portfolio"),
}
_DECISION = {
    "pending": ("pendente (não enviado à CCEE)", "pending (not sent to CCEE)"),
    "sent": ("enviado à CCEE", "sent to CCEE"),
    "cancelled": ("cancelado", "cancelled"),
}
_SIGNATURE = {
    "verified": ("verificada", "verified"),
    "unverified": ("NÃO CONFERE", "DOES NOT VERIFY"),
    "unsigned": ("SEM ASSINATURA", "UNSIGNED"),
}


def _label(table: dict[str, tuple[str, str]], value: Any) -> str:
    pt, en = table.get(str(value), (str(value), str(value)))
    return choose(pt, en)


def _decision_text(decision: dict[str, Any] | None) -> str:
    decision = decision or {}
    text = _label(_DECISION, decision.get("state"))
    if decision.get("at"):
        text += f" {choose('em', 'at')} {decision['at']}"
    if decision.get("reason"):
        text += f" — {choose('motivo', 'reason')}: {decision['reason']}"
    return text


def _signature_ok(signature: dict[str, Any] | None) -> bool:
    return (signature or {}).get("status") == "verified"


def _warn_signature(out: Out, what: str, signature: dict[str, Any] | None) -> None:
    """Loud, on stderr: a result whose enclave signature does not verify now is not the
    enclave's (edited, or stored without its answer) and cannot be sent."""
    signature = signature or {}
    status = signature.get("status") or "unsigned"
    reason = signature.get("reason") or "—"
    bar = "!" * 78
    out.warn(bar)
    out.warn(
        choose(
            f"!! ATENÇÃO: a assinatura do enclave sobre {what} NÃO foi verificada ({status}).",
            f"!! WARNING: the enclave's signature over {what} did NOT verify ({status}).",
        )
    )
    out.warn(f"!! {choose('motivo', 'reason')}: {reason}")
    out.warn(
        choose(
            "!! Não confie nestes números; a plataforma recusa enviá-los à CCEE.",
            "!! Do not rely on these figures; the platform refuses to send them to CCEE.",
        )
    )
    out.warn(bar)


def _correction_lines(closing: dict[str, Any]) -> list[str]:
    notice = closing.get("correction")
    if not notice:
        return []
    changed = notice.get("what_changed") or {}
    what = ", ".join(f"{k}: {v}" for k, v in changed.items()) if changed else "—"
    return [
        choose(
            f"  CORREÇÃO: este fechamento substitui {notice.get('supersedes')} — motivo: "
            f"{notice.get('why')} ({notice.get('by')}, {notice.get('at')})",
            f"  CORRECTION: this closing supersedes {notice.get('supersedes')} — why: "
            f"{notice.get('why')} ({notice.get('by')}, {notice.get('at')})",
        ),
        f"    {choose('o que mudou', 'what changed')}: {what}",
    ]


def _print_leverage(body: dict[str, Any], out: Out) -> None:
    closing = body.get("closing") or {}
    out.line(f"{body.get('acronym')} — {choose('semana', 'week')} {body.get('week')}")
    current = (
        choose("vigente", "current")
        if closing.get("is_current")
        else choose("SUBSTITUÍDO por uma correção", "SUPERSEDED by a correction")
    )
    out.line(
        f"  {choose('fechamento', 'closing')}: {closing.get('reference')} ({current}); "
        f"{choose('parâmetros', 'parameters')} v{closing.get('parameters_version') or '—'}; "
        f"{choose('concluído em', 'finished at')} {closing.get('finished_at') or '—'}"
    )
    for line in _correction_lines(closing):
        out.line(line)
    out.line(f"  {choose('situação', 'status')}: {_label(_RESULT_STATUS, body.get('status'))}")
    error = body.get("error") or {}
    if error:
        out.line(f"  {choose('erro', 'error')}: {error.get('code', '')} {error.get('message', '')}")
    figures = body.get("figures")
    if figures is None:
        out.line(
            choose(
                "  números: não mostrados (só ao agente, ou à CCEE depois do envio)",
                "  figures: not shown (only to the agent, or to CCEE once sent)",
            )
        )
    else:
        out.line(
            f"  FA = {_num(figures.get('fa'))}   "
            f"{choose('FA_risco', 'FA_risk')} = {_num(figures.get('fa_risk'))}"
        )
        out.line(
            f"  RES_FIN/PLA = {_num(figures.get('res_fin_over_pla'))}   "
            f"{choose('concentração: maior contraparte', 'concentration: largest')} "
            f"{_num(figures.get('concentration_largest'))}, "
            f"{choose('cinco maiores', 'top five')} {_num(figures.get('concentration_top_five'))}"
        )
        shares = figures.get("var_share_by_bucket")
        if shares:
            out.line(
                f"  {choose('participação no VaR por período', 'VaR share by bucket')}: "
                + "  ".join(f"M+{i} {_num(v)}" for i, v in enumerate(shares))
            )
        net = figures.get("network") or {}
        if net:
            out.line(
                f"  {choose('rede', 'network')}: CVaR "
                f"{choose('intrínseco', 'intrinsic')} {_num(net.get('cvar_intrinsic'))}, "
                f"{choose('propagado', 'propagated')} {_num(net.get('cvar_propagated'))}, "
                f"total {_num(net.get('cvar_total'))}; "
                f"{choose('comunidade', 'community')} {net.get('community', '—')} "
                f"({choose('posição', 'rank')} {net.get('community_rank', '—')} "
                f"{choose('de', 'of')} {net.get('n_communities', '—')})"
            )
    out.line(f"  {choose('decisão', 'decision')}: {_decision_text(body.get('decision'))}")
    signature = body.get("signature") or {}
    out.line(
        f"  {choose('assinatura do enclave', 'enclave signature')}: "
        f"{_label(_SIGNATURE, signature.get('status'))}"
        + (f" (kid {signature['signing_kid']})" if signature.get("signing_kid") else "")
    )


def format_breakdown(document: dict[str, Any]) -> list[str]:
    """The breakdown the enclave sealed to the agent (R$): totals, per bucket, per source, and
    the concentration detail, as aligned tables."""
    lines: list[str] = []
    leverage = document.get("leverage")
    if leverage:
        lines.append(
            f"  PLA = {_brl(leverage.get('pla'))}   RES_FIN = {_brl(leverage.get('res_fin'))}   "
            f"VaR_total = {_brl(leverage.get('var_total'))}   RWA = {_brl(leverage.get('rwa'))}"
        )
        lines.append(
            f"  {choose('risco adicional', 'extra risk')} = {_brl(leverage.get('extra_risk'))}   "
            f"{choose('receita do mercado regulado', 'regulated market revenue')} = "
            f"{_brl(leverage.get('regulated_market_revenue'))}   "
            f"z = {_num(leverage.get('z'))}   "
            f"{choose('confiança', 'confidence')} = {_num(leverage.get('confidence'))}"
        )
        if leverage.get("reason"):
            lines.append(f"  {choose('observação', 'note')}: {leverage['reason']}")
        buckets = leverage.get("buckets") or []
        if buckets:
            lines.append("")
            lines += _table(
                (
                    choose("período", "bucket"),
                    choose("horas", "hours"),
                    choose("volatilidade", "volatility"),
                    "MtM (R$)",
                    choose("exposição (R$)", "exposure (R$)"),
                    "VaR (R$)",
                    choose("risco extra (R$)", "extra risk (R$)"),
                    "RES_FIN (R$)",
                ),
                [
                    (
                        str(b.get("label") or b.get("index")),
                        _num(b.get("hours"), 0),
                        _num(b.get("volatility")),
                        _brl(b.get("mtm_total")),
                        _brl(b.get("exposure")),
                        _brl(b.get("var")),
                        _brl(b.get("extra_risk")),
                        _brl(b.get("financial_result")),
                    )
                    for b in buckets
                ],
            )
            sources = [
                (
                    str(b.get("label") or b.get("index")),
                    source,
                    _num(net, 3),
                    _brl((b.get("forward_price") or {}).get(source)),
                    _brl((b.get("mtm") or {}).get(source)),
                )
                for b in buckets
                for source, net in sorted((b.get("net_mwm") or {}).items())
            ]
            if sources:
                lines.append("")
                lines += _table(
                    (
                        choose("período", "bucket"),
                        choose("fonte", "source"),
                        "NET (MWm)",
                        choose("preço (R$/MWh)", "price (R$/MWh)"),
                        "MtM (R$)",
                    ),
                    sources,
                )
    concentration = document.get("concentration")
    if concentration:
        lines.append("")
        lines.append(
            f"  {choose('concentração', 'concentration')}: "
            f"{choose('maior contraparte', 'largest counterparty')} "
            f"{concentration.get('largest_counterparty') or '—'} "
            f"{_brl(concentration.get('largest_exposure'))} "
            f"({_num(concentration.get('largest_ratio'))} {choose('do PLA', 'of PLA')}); "
            f"{choose('cinco maiores', 'top five')} {_brl(concentration.get('top_five_exposure'))} "
            f"({_num(concentration.get('top_five_ratio'))} {choose('do PLA', 'of PLA')})"
        )
        exposures = concentration.get("exposures") or []
        if exposures:
            lines += _table(
                (
                    choose("posição", "rank"),
                    choose("contraparte", "counterparty"),
                    choose("bruta (R$)", "gross (R$)"),
                    choose("mitigação (R$)", "mitigation (R$)"),
                    choose("líquida (R$)", "net (R$)"),
                ),
                [
                    (
                        str(e.get("rank", "—")),
                        str(e.get("acronym") or e.get("cnpj") or "—"),
                        _brl(e.get("gross_exposure")),
                        _brl(e.get("mitigation_brl")),
                        _brl(e.get("net_exposure")),
                    )
                    for e in exposures
                ],
            )
    if not lines:
        lines.append(
            choose("  (vazio: sem cálculo neste resultado)", "  (empty: nothing computed)")
        )
    return lines


def _confirm(out: Out, question: str) -> bool:
    """Ask on stderr (stdout stays the data), read one line: s/sim/y/yes confirm."""
    print(question, end=" ", file=out.err, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in {"s", "sim", "y", "yes"}


def cmd_leverage(args: argparse.Namespace, out: Out) -> int:
    action = getattr(args, "leverage_command", None)
    handlers = {
        "show": _leverage_show,
        "send": _leverage_send,
        "cancel": _leverage_cancel,
        "history": _leverage_history,
        "network": _leverage_network,
    }
    if action not in handlers:
        out.line(
            choose(
                "Use: leverage show|send|cancel|network SEMANA --agent ID, ou leverage history "
                "--agent ID",
                "Use: leverage show|send|cancel|network WEEK --agent ID, or leverage history "
                "--agent ID",
            )
        )
        return EXIT_CONFIG
    return handlers[action](_client(args), args, out)


def _leverage_show(client: Client, args: argparse.Namespace, out: Out) -> int:
    body = client.leverage(args.week, args.agent)
    verified = _signature_ok(body.get("signature"))
    path = Path(args.reply_key).expanduser() if args.reply_key else client.reply_key_path()
    document, problem = None, None
    try:
        document = client.open_breakdown(body, path=path)
    except ReplyKeyError as exc:
        problem = exc
    out.data({**body, "breakdown": document, "breakdown_error": problem and problem.code})
    _print_leverage(body, out)
    if not verified:
        _warn_signature(out, choose("este resultado", "this result"), body.get("signature"))
    if document is not None:
        out.line("")
        out.line(
            choose(
                f"Detalhamento (cifrado pelo enclave à sua chave de resposta, aberto aqui com "
                f"{path}; a plataforma não o lê):",
                f"Breakdown (sealed by the enclave to your reply key, opened here with {path}; "
                f"the platform cannot read it):",
            )
        )
        if not verified:
            # Anyone who knows the public reply key can seal a document to it: what makes this
            # one the enclave's is the signature over the row, which did not verify.
            out.line(
                choose(
                    "  (NÃO autenticado: a assinatura do enclave sobre o resultado não confere)",
                    "  (NOT authenticated: the enclave's signature over the result does not "
                    "verify)",
                )
            )
        for line in format_breakdown(document):
            out.line(line)
    elif problem is None and body.get("figures") is not None:
        out.line(
            choose(
                "  sem detalhamento: o portfólio foi enviado sem chave de resposta (prd_reply)",
                "  no breakdown: the portfolio was submitted without a reply key (prd_reply)",
            )
        )
    if problem is not None:
        out.warn(problem.message)
        return EXIT_CONFIG
    return EXIT_OK if verified else EXIT_REJECTED


def _leverage_send(client: Client, args: argparse.Namespace, out: Out) -> int:
    body = client.leverage(args.week, args.agent)
    if not _signature_ok(body.get("signature")):
        _warn_signature(out, choose("este resultado", "this result"), body.get("signature"))
    state = (body.get("decision") or {}).get("state")
    if state == "pending" and not args.yes:
        fa = (body.get("figures") or {}).get("fa")
        question = choose(
            f"Enviar à CCEE o resultado de {body.get('acronym')} na semana {body.get('week')} "
            f"(FA = {_num(fa)})? O envio é definitivo. [s/N]",
            f"Send {body.get('acronym')}'s result for week {body.get('week')} (FA = {_num(fa)}) "
            f"to CCEE? Sending is final. [y/N]",
        )
        if not _confirm(out, question):
            out.warn(choose("Não enviado.", "Not sent."))
            return EXIT_REJECTED
    answer = client.leverage_send(args.week, args.agent)
    out.data(answer)
    out.line(
        f"{answer.get('acronym')} {answer.get('week')}: {_decision_text(answer.get('decision'))}"
    )
    return EXIT_OK


def _leverage_cancel(client: Client, args: argparse.Namespace, out: Out) -> int:
    answer = client.leverage_cancel(args.week, args.agent, args.reason)
    out.data(answer)
    out.line(
        f"{answer.get('acronym')} {answer.get('week')}: {_decision_text(answer.get('decision'))}"
    )
    return EXIT_OK


def _leverage_history(client: Client, args: argparse.Namespace, out: Out) -> int:
    rows = client.leverage_history(args.agent)
    out.data(rows)
    if not rows:
        out.line(choose("Nenhum resultado.", "No results."))
        return EXIT_OK
    table = []
    for row in rows:
        closing = row.get("closing") or {}
        table.append(
            (
                str(row.get("week")),
                f"{closing.get('reference')}{'' if closing.get('is_current') else ' *'}",
                _label(_RESULT_STATUS, row.get("status")),
                _num(row.get("fa")),
                _num(row.get("fa_risk")),
                _label(_DECISION, (row.get("decision") or {}).get("state")).split(" (")[0],
                _label(_SIGNATURE, (row.get("signature") or {}).get("status")),
                f"v{closing.get('parameters_version') or '—'}",
                choose("correção", "correction") if closing.get("correction") else "",
            )
        )
    for line in _table(
        (
            choose("semana", "week"),
            choose("fechamento", "closing"),
            choose("situação", "status"),
            "FA",
            choose("FA_risco", "FA_risk"),
            choose("decisão", "decision"),
            choose("assinatura", "signature"),
            choose("parâmetros", "parameters"),
            "",
        ),
        table,
    ):
        out.line(line)
    if any(not (r.get("closing") or {}).get("is_current") for r in rows):
        out.line(choose("  * substituído por uma correção", "  * superseded by a correction"))
    for row in rows:
        closing = row.get("closing") or {}
        for line in _correction_lines(closing):
            out.line(f"  {row.get('week')}:" + line[1:])
    bad = [r for r in rows if not _signature_ok(r.get("signature"))]
    for row in bad:
        _warn_signature(
            out,
            choose(
                f"o resultado de {row.get('week')} ({(row.get('closing') or {}).get('reference')})",
                f"the result of {row.get('week')} ({(row.get('closing') or {}).get('reference')})",
            ),
            row.get("signature"),
        )
    return EXIT_REJECTED if bad else EXIT_OK


def _leverage_network(client: Client, args: argparse.Namespace, out: Out) -> int:
    body = client.network_risk(args.week, args.agent)
    out.data(body)
    sources = {
        "trade_network": ("rede de contratos registrada", "registered trade network"),
        "counterparties": ("declarações de contrapartes", "counterparties declarations"),
        "none": ("nenhuma", "none"),
    }
    out.line(
        f"{choose('semana', 'week')} {body.get('week')} — "
        f"{choose('fonte da rede', 'network source')}: {_label(sources, body.get('source'))}"
    )
    local = body.get("local")
    if local is None:
        out.line(
            choose("  indicadores do agente: não mostrados", "  agent's indicators: not shown")
        )
    else:
        out.line(
            f"  CVaR {choose('intrínseco', 'intrinsic')} {_num(local.get('cvar_intrinsic'))}, "
            f"{choose('propagado', 'propagated')} {_num(local.get('cvar_propagated'))}, "
            f"total {_num(local.get('cvar_total'))}; "
            f"{choose('comunidade', 'community')} {local.get('community', '—')} "
            f"({choose('posição', 'rank')} {local.get('community_rank', '—')} "
            f"{choose('de', 'of')} {local.get('n_communities', '—')})"
        )
    out.line(f"  {choose('média da rede', 'network mean')}: {_num(body.get('network_mean'))}")
    summary = body.get("summary") or {}
    if summary:
        shown = (f"{k} = {_num(v) if isinstance(v, float) else v}" for k, v in summary.items())
        out.line("  " + ", ".join(shown))
    communities = body.get("communities") or []
    if communities:
        for line in _table(
            (
                choose("comunidade", "community"),
                choose("posição", "rank"),
                choose("tamanho", "size"),
                choose("propagadores", "propagators"),
                choose("CVaR intrínseco", "CVaR intrinsic"),
                choose("CVaR propagado", "CVaR propagated"),
                "CVaR total",
            ),
            [
                (
                    str(c.get("community")),
                    str(c.get("rank") if c.get("rank") is not None else "—"),
                    str(c.get("size")),
                    str(c.get("propagators")),
                    _num(c.get("mean_cvar_intrinsic")),
                    _num(c.get("mean_cvar_propagated")),
                    _num(c.get("mean_cvar_total")),
                )
                for c in communities
            ],
        ):
            out.line(line)
    signature = body.get("signature")
    out.line(
        f"  {choose('assinatura do enclave', 'enclave signature')}: "
        f"{_label(_SIGNATURE, (signature or {}).get('status'))}"
    )
    if not _signature_ok(signature):
        _warn_signature(out, choose("este resultado", "this result"), signature)
        return EXIT_REJECTED
    return EXIT_OK


COMMANDS = {
    "init": cmd_init,
    "login": cmd_login,
    "logout": cmd_logout,
    "attestation": cmd_attestation,
    "submit": cmd_submit,
    "batch": cmd_batch,
    "status": cmd_status,
    "progress": cmd_progress,
    "templates": cmd_templates,
    "schemas": cmd_schemas,
    "lookup": cmd_lookup,
    "fa-preview": cmd_fa_preview,
    "trade-network": cmd_trade_network,
    "reply-key": cmd_reply_key,
    "leverage": cmd_leverage,
}


def _pre_language(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configured = None
    with contextlib.suppress(ClientError):
        configured = load_config(_value_of(argv, "--config")).language
    set_language(resolve_language(_pre_language(argv), configured))
    parser = _parser()
    args = parser.parse_args(argv)
    err = stderr or sys.stderr
    out = Out(args.json, stdout, err)
    if not args.command:
        parser.print_help(stdout)
        return EXIT_CONFIG
    try:
        return COMMANDS[args.command](args, out)
    except AttestationRefused as exc:
        print(exc.message, file=err)
        return EXIT_ATTESTATION
    except PayloadError as exc:
        print(exc.message, file=err)
        for line in format_errors(exc.errors):
            print(line, file=err)
        if args.json:
            print(
                json.dumps({"error": exc.code, "errors": exc.errors}, ensure_ascii=False),
                file=out.stream,
            )
        return EXIT_REJECTED if exc.errors or exc.code == "invalid" else EXIT_CONFIG
    except (ConfigError, ReplyKeyError) as exc:
        print(exc.message, file=err)
        return EXIT_CONFIG
    except ApiError as exc:
        print(exc.message, file=err)  # "… answered 409 (already_sent): <the platform's message>"
        if args.json:
            print(
                json.dumps(
                    {"error": exc.api_code, "status": exc.status, "message": exc.api_message},
                    ensure_ascii=False,
                ),
                file=out.stream,
            )
        for name, rules in exc.fields.items():
            print(f"  {name}: {'; '.join(rules)}", file=err)
        for line in format_errors(exc.errors):
            print(line, file=err)
        return EXIT_API
    except ConnectionFailed as exc:
        print(exc.message, file=err)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return 130


def _value_of(argv: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None

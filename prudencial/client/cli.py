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
    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

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
        )
    finally:
        bar.close()
    return _report_submitted(client, submitted, args, out)


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
    _send_options(send, check=False)


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
        from .envelope import parse_json_bytes

        payload, errors = parse_json_bytes(data.removeprefix(b"\xef\xbb\xbf")), []
    errors = errors or formats.contracts_errors(payload, week=week)
    if errors:
        raise PayloadError("invalid", errors=errors, count=len(errors))
    return payload


def cmd_trade_network(args: argparse.Namespace, out: Out) -> int:
    import time
    import uuid

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
    payload = trade_network_payload(args.file, week=args.week)  # refused here: nothing sent
    client = _client(args)
    jwe = client.encrypt(payload)
    key = args.idempotency_key or str(uuid.uuid4())
    path = f"weeks/{_segment(args.week)}/trade-network/"
    answer = client._post_with_retries(
        lambda: client.api.request(
            "POST",
            path,
            json_body={"jwe": jwe, "correction": bool(args.correction)},
            headers={"Idempotency-Key": key},
        ).json()
    )
    receipt = envelope.receipt(jwe)
    out.line(
        choose(
            f"Enviada: rede {answer.get('id')}, {len(payload['contracts'])} contratos",
            f"Sent: network {answer.get('id')}, {len(payload['contracts'])} contracts",
        )
    )
    out.line(f"{choose('recibo', 'receipt')}: {receipt}")
    if answer.get("receipt") != receipt:
        out.line(tr("payload.receipt_mismatch", got=answer.get("receipt"), expected=receipt))
    if args.no_wait:
        out.data(answer)
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    while True:
        rows = client.api.get_json(path)
        rows = rows["results"] if isinstance(rows, dict) and "results" in rows else rows
        row = next((r for r in rows if r.get("id") == answer.get("id")), None) or {}
        if row.get("status") not in (None, "pending") or time.monotonic() > deadline:
            break
        time.sleep(1.0)
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
        return EXIT_OK
    return (
        EXIT_REJECTED
        if row.get("status") in ("rejected", "error", "unverified")
        else EXIT_CONNECTION
    )


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
    out = Out(args.json, stdout)
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
    except ConfigError as exc:
        print(exc.message, file=err)
        return EXIT_CONFIG
    except ApiError as exc:
        print(exc.message, file=err)
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

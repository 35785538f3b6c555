"""`broker`: run, migrate and check the server side."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from broker.errors import BrokerError, ConfigError

if TYPE_CHECKING:  # the commands import the server's modules only when they run
    from broker.cli.preview import PreviewFormat
    from broker.config import Config
    from broker.domain import Channel

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The federation broker (server side).")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys for the SAML IdP and the OIDC issuer.")
app.add_typer(keys_app, name="keys")
org_app = typer.Typer(no_args_is_help=True, help="AWS Organizations: the accounts it lists, against the mapping.")
app.add_typer(org_app, name="org")
report_app = typer.Typer(no_args_is_help=True, help="Reports computed from the directory and the mapping.")
app.add_typer(report_app, name="report")
history_app = typer.Typer(no_args_is_help=True, help="The mapping's numbered versions: list, show, diff, restore.")
app.add_typer(history_app, name="history")
review_app = typer.Typer(no_args_is_help=True, help="Access reviews: snapshots of the access report, changes since, attestations.")
app.add_typer(review_app, name="review")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: verify its hash chain, export it, purge by retention.")
app.add_typer(audit_app, name="audit")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration file (default: $BROKER_CONFIG)")
]


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _load(path: Path | None) -> Config:
    from broker.config import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="the YAML file to validate")]) -> None:
    """Validate a configuration file: every problem with its path, then warnings (exit 2 on problems).
    When its database can be reached, also what the next start's mapping sync would keep or refuse."""
    from broker.cli.check_config import check_config_file

    check = check_config_file(file)
    for problem in check.problems:
        typer.echo(f"error: {problem}", err=True)
    for warning in check.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for note in check.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(check.summary(), err=not check.ok)
    if not check.ok:
        raise typer.Exit(2)


@app.command()
def migrate(
    config: ConfigOpt = None,
    revision: Annotated[str, typer.Option(help="target revision (default: the newest)")] = "head",
    downgrade: Annotated[bool, typer.Option("--downgrade", help="go down to --revision instead")] = False,
) -> None:
    """Upgrade the database schema (SQLite or PostgreSQL) with the Alembic migrations."""
    from broker.db import session

    cfg = _load(config)
    engine = session.make_engine(cfg.database)
    try:
        if downgrade:
            session.downgrade(engine, revision if revision != "head" else "base")
        else:
            session.migrate(engine, revision)
    except Exception as exc:  # noqa: BLE001 - report, do not dump a stack on an operator
        typer.echo(f"migration failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database schema at revision {session.current_revision(engine)}")


def _run(cfg: Config, *, workers: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain and stop gracefully (broker.serving): one process, or
    a supervisor and ``workers`` worker processes. Each worker's app closes what it opened in its
    lifespan's shutdown (``create_app(close_services=True)``)."""
    import uvicorn

    from broker import logs
    from broker.app import create_app, prepare_start, startup_problems
    from broker.serving import STARTUP_FAILURE, serve_one, supervise

    workers = workers or cfg.server.workers
    server = cfg.server
    # uvicorn must not trust forwarding headers by itself (its default believes any from
    # 127.0.0.1): the broker decides the client address, from server.trusted_proxies only.
    # Hence proxy_headers=False, forwarded_allow_ips="" for both paths below.
    def uvicorn_config(app: Any, **extra: Any) -> uvicorn.Config:
        return uvicorn.Config(app, host=server.host, port=server.port, access_log=False, log_config=None,
                              proxy_headers=False, forwarded_allow_ips="",
                              timeout_graceful_shutdown=server.shutdown_grace_seconds,
                              timeout_keep_alive=server.keepalive_seconds, **extra)

    if workers > 1:
        # The database is checked and the mapping synced once, here; then each worker builds its
        # own app from $BROKER_CONFIG (a worker that cannot start stops them all).
        logs.configure(cfg.logging.level, cfg.logging.format)
        try:
            prepare_start(cfg)
        except BrokerError as exc:
            typer.echo("cannot start:\n" + "\n".join(startup_problems(exc)), err=True)
            raise typer.Exit(1) from None
        config = uvicorn_config("broker.app:app_from_env", factory=True, workers=workers)
        code = supervise(config, workers=workers, drain_seconds=server.drain_seconds)
        if code:
            raise typer.Exit(code)
        return
    try:
        application = create_app(cfg, close_services=True)
    except BrokerError as exc:
        typer.echo("cannot start:\n" + "\n".join(startup_problems(exc)), err=True)
        raise typer.Exit(1) from None
    if not serve_one(uvicorn_config(application), drain_seconds=server.drain_seconds):
        raise typer.Exit(STARTUP_FAILURE)


@app.command()
def serve(
    config: ConfigOpt = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes (default: server.workers)")] = None,
) -> None:
    """Run the broker with a configuration file."""
    cfg = _load(config)
    if config is not None:
        os.environ["BROKER_CONFIG"] = str(config)
    _run(cfg, workers=workers)


def ensure_demo_keys(data_dir: Path) -> None:
    """The demo's signing key pair, made once into its data directory (key mode 0600), so its SAML
    metadata and JWKS stay the same across restarts (config/demo.yaml names these files)."""
    from broker.minting.keys import generate_keypair

    keys = data_dir / "keys"
    if not ((keys / "signing.key.pem").exists() and (keys / "signing.cert.pem").exists()):
        generate_keypair(keys, name="signing", common_name="federation-broker-demo", force=True)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8000,
    config: ConfigOpt = None,
    data_dir: Annotated[
        Path, typer.Option(help="where the demo keeps its SQLite database and its signing key")
    ] = Path(".demo"),
) -> None:
    """The embedded demo: SQLite, in-process state, sandbox accounts; ready in a browser."""
    os.environ["BROKER_DEMO_PORT"] = str(port)
    os.environ["BROKER_DEMO_DIR"] = str(data_dir.resolve())  # absolute: a preview from elsewhere finds the key
    sts_port = os.environ.setdefault("BROKER_DEMO_STS_PORT", str(port + 1))  # the sandbox STS (config/demo.yaml)
    token = os.environ.get("BROKER_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    os.environ["BROKER_ADMIN_TOKEN"] = token
    path = config or _repo_root() / "config" / "demo.yaml"
    ensure_demo_keys(data_dir)
    cfg = _load(path)
    url = f"http://127.0.0.1:{port}"
    typer.echo(
        "\n".join(
            [
                "",
                "  Federation broker demo (SANDBOX: no real AWS account is touched)",
                f"  portal    {url}/          sign in as alice / alice-demo-pw, click Console",
                f"  cli       awsbroker login --url {url}   then: awsbroker credentials -a sandbox-dev -r Admin",
                "  aws cli   awsbroker configure   then: aws sts get-caller-identity --profile sandbox-dev-Admin",
                f"  sts       http://127.0.0.1:{sts_port}   the SANDBOX STS (moto) the profiles use as endpoint_url",
                f"  admin ui  {url}/admin     the admin pages (alice: matrix, mappings, rules, audit, report)",
                f"  open      {url}/docs      the API, try it in the browser",
                f"  admin     Authorization: Bearer {token}",
                f"  try       curl -H 'Authorization: Bearer {token}' {url}/api/v1/admin/accounts",
                f"  explain   curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
                f"              -d '{{\"username\": \"alice\"}}' {url}/api/v1/admin/explain   (groups read from the directory)",
                "  sign in   alice / alice-demo-pw (admin: also HTTP Basic on the admin API), bob / bob-demo-pw",
                f"  break-glass {url}/break-glass   oncall / oncall-demo-pw + a code of config/demo-break-glass.totp",
                "",
            ]
        )
    )
    _run(cfg, workers=1)


@app.command("admin-token")
def admin_token(name: Annotated[str, typer.Option(help="who the token is for (the audit actor)")] = "admin") -> None:
    """Make a new admin token and the config lines that accept it (only its hash is stored)."""
    from broker.admin_auth import hash_token, new_token

    token = new_token()
    typer.echo(f"token (give it to {name}; it is shown once): {token}")
    typer.echo("config lines:\nadmin:\n  tokens:\n" f"    - name: {name}\n      sha256: {hash_token(token)}")


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for key.pem and cert.pem")] = Path("keys"),
    name: Annotated[str, typer.Option(help="file name stem, e.g. 'next' for a rotation key")] = "signing",
    common_name: Annotated[str, typer.Option(help="certificate subject CN")] = "federation-broker",
    days: Annotated[int, typer.Option(help="certificate validity in days")] = 3650,
    force: Annotated[bool, typer.Option("--force", help="overwrite existing files")] = False,
) -> None:
    """Write an RSA-2048 signing key (mode 0600) and its self-signed certificate."""
    from broker.minting.keys import generate_keypair

    try:
        key_path, cert_path, kid = generate_keypair(out, name=name, common_name=common_name, days=days, force=force)
    except FileExistsError as exc:
        typer.echo(f"{exc}: refusing to overwrite (use --force)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key  {key_path} (mode 0600)\ncert {cert_path}\nkid  {kid}")


@app.command("preview-assertion")
def preview_assertion(
    user: Annotated[str, typer.Option("--user", help="the username, read from the directory as an issuance reads it")],
    account: Annotated[str, typer.Option("--account", help="12-digit account id or alias")],
    role: Annotated[str, typer.Option("--role", help="role name")],
    config: ConfigOpt = None,
    format: Annotated[
        str | None, typer.Option("--format", help="saml or jwt (default: the account's federation path)")
    ] = None,
    immutable_id: Annotated[
        str | None, typer.Option("--id", help="override: the immutable id (SourceIdentity, sub)")
    ] = None,
    groups: Annotated[
        list[str] | None, typer.Option("--groups", "-g", help="override: a group, replacing the directory's (repeat it)")
    ] = None,
    attributes: Annotated[
        list[str] | None, typer.Option("--attribute", help="override: NAME=VALUE attribute for session tags (repeat it)")
    ] = None,
    channel: Annotated[str, typer.Option(help="cli or console: which mapping cap applies")] = "cli",
    duration: Annotated[int | None, typer.Option(help="requested DurationSeconds (clamped as for a real request)")] = None,
    decode: Annotated[bool, typer.Option("--decode", help="print the decoded XML / JWT header and claims instead")] = False,
) -> None:
    """Print the signed SAML Response (base64) or ID token the broker would send for USER, without calling STS.

    The person (groups, immutable id, attributes) is read from the directory; --id/--groups/--attribute
    replace what it says, and are the only source when it cannot be reached.
    """
    from broker.cli.preview import Overrides, preview, read_person

    formats: dict[str | None, PreviewFormat | None] = {None: None, "saml": "saml", "jwt": "jwt"}
    channels: dict[str, Channel] = {"cli": "cli", "console": "console"}
    if format not in formats or channel not in channels:
        typer.echo("--format is saml or jwt; --channel is cli or console", err=True)
        raise typer.Exit(2)
    cfg = _load(config)
    overrides = Overrides(immutable_id=immutable_id, groups=tuple(groups) if groups else None,
                          attributes=tuple(attributes or ()))
    try:
        person = read_person(cfg, user, overrides)
        for note in person.notes:
            typer.echo(f"note: {note}", err=True)
        identity = person.identity
        typer.echo(f"person: {identity.username} (id {identity.id}; groups: {', '.join(identity.groups) or 'none'})",
                   err=True)
        result = preview(cfg, identity=identity, account=account, role=role, fmt=formats[format],
                         channel=channels[channel], duration=duration)
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(3 if exc.status == 503 else 1) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    for key, value in result.summary.items():
        typer.echo(f"{key}: {value}", err=True)
    typer.echo(result.decoded if decode else result.text)

@app.command("aws-setup")
def aws_setup(
    config: ConfigOpt = None,
    format: Annotated[  # broker.aws.setup_output.SetupFormat (mypy checks they agree), written here: imported when run
        Literal["cloudformation", "terraform"],
        typer.Option("--format", help="cloudformation (a template per account) or terraform (a module directory per account)"),
    ] = "cloudformation",
    account: Annotated[
        list[str] | None, typer.Option("--account", "-a", help="12-digit account id or alias (repeat it; default: all)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="directory for the accounts' templates or modules (default: stdout)")
    ] = None,
    stackset: Annotated[bool, typer.Option(
        "--stackset", help="cloudformation: one template for all the accounts sharing a provider (a StackSet)")] = False,
) -> None:
    """Generate each account's IAM provider and role trust policies from the mapping, as CloudFormation or Terraform."""
    from broker.aws.setup_output import single, stackset_files
    from broker.aws.stackset import TEMPLATE_BODY_LIMIT
    from broker.cli.aws_setup import aws_setup as run_setup
    from broker.cli.aws_setup import write

    cfg = _load(config)
    try:
        setup = run_setup(cfg, list(account or ()))
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(1) from None
    for note in setup.notes:
        typer.echo(f"note: {note}", err=True)
    for trust in setup.accounts:
        for note in trust.notes:
            typer.echo(f"note: {trust.label}: {note}", err=True)
    if stackset and format != "cloudformation":
        typer.echo("--stackset is for --format cloudformation (a Terraform module serves every account already)", err=True)
        raise typer.Exit(2)
    try:
        files = stackset_files(setup.accounts) if stackset else {}
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(1) from None
    for name, text in files.items():
        if len(text.encode()) > TEMPLATE_BODY_LIMIT:
            typer.echo(f"note: {name} is {len(text.encode())} bytes, over the {TEMPLATE_BODY_LIMIT} of --template-body: "
                       "upload it to S3 and give --template-url", err=True)
    if out is not None:
        for path in write(setup, out, format, stackset=stackset):
            typer.echo(f"wrote {path}", err=True)
        return
    if stackset:
        if len(files) != 1:
            typer.echo(f"the accounts need {len(files)} StackSet templates (one per provider): give --out DIR", err=True)
            raise typer.Exit(2)
        typer.echo(next(iter(files.values())), nl=False)
        return
    if len(setup.accounts) != 1:
        typer.echo("several accounts: give --out DIR (one template or module each) or one --account", err=True)
        raise typer.Exit(2)
    typer.echo(single(setup.accounts[0], format), nl=False)


@app.command()
def doctor(
    config: ConfigOpt = None,
    account: Annotated[
        list[str] | None, typer.Option("--account", "-a", help="12-digit account id or alias (repeat it; default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
) -> None:
    """Check, through read-only IAM calls, that every mapped account's provider and roles let the broker in.

    Exit 0: everything ok (warnings allowed); 1: an error in some account; 2: bad usage or configuration.
    """
    import json

    from broker.aws.doctor_report import as_json as report_json
    from broker.aws.doctor_report import table
    from broker.cli.doctor import doctor as run_doctor

    cfg = _load(config)
    try:
        diagnosis = run_doctor(cfg, list(account or ()))
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(2) from None
    for note in diagnosis.notes:
        typer.echo(f"note: {note}", err=True)
    body = report_json(diagnosis.reports)
    typer.echo(json.dumps(body, indent=2) if as_json else table(diagnosis.reports), nl=as_json)
    if body["summary"]["severity"] == "error":
        raise typer.Exit(1)


@app.command("revoke")
def revoke(
    user: Annotated[str | None, typer.Option("--user", "-u", help="revoke this person's sessions (username)")] = None,
    role: Annotated[str | None, typer.Option("--role", help="revoke every session of this mapped role (ARN)")] = None,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="revoke every session of the account's declared roles (id or alias)")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="write the policies and end the logins (default: dry run)")] = False,
    immutable_id: Annotated[
        str | None, typer.Option("--id", help="with --user: the immutable id, when the directory cannot tell it")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="who runs it, for the audit event (default: the OS user)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke sessions already issued: deny everything to sessions issued before now on each affected role
    (inline policy BrokerRevokeOlderSessions) and, for --user, end the person's portal sessions and CLI logins.

    Without --apply nothing is changed anywhere: it prints, per account and role, the policy it would write.
    """
    import getpass

    from broker.cli.revoke import lines
    from broker.cli.revoke import revoke as run_revoke
    from broker.cli.revoke_targets import plan_revocation

    cfg = _load(config)
    try:
        plan = plan_revocation(cfg, user=user, role=role, account=account, immutable_id=immutable_id)
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(2 if exc.status < 500 else 3) from None
    result = run_revoke(cfg, plan, apply=apply, actor=actor or getpass.getuser())
    typer.echo("\n".join(lines(result)))
    if not result.ok:
        raise typer.Exit(1)


def _history(run: Callable[[], str], *, err: bool = False) -> None:
    try:
        out = run()
        if out:
            typer.echo(out, err=err)
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        for detail in exc.details if isinstance(exc.details, list) else []:
            typer.echo(f"  - {detail.get('message', detail) if isinstance(detail, dict) else detail}", err=True)
        raise typer.Exit(1 if exc.status < 500 else 3) from None


@history_app.command("list")
def history_list(
    config: ConfigOpt = None, limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many, newest first")] = 20
) -> None:
    """The mapping's latest versions: number, time, actor, how (api, import, restore, config-sync), counts."""
    from broker.cli.history import list_lines

    cfg = _load(config)
    _history(lambda: "\n".join(list_lines(cfg, limit=limit)))


@history_app.command("show")
def history_show(
    number: Annotated[int, typer.Argument(min=1, help="the version number")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the version as the admin API answers it")] = False,
    document: Annotated[bool, typer.Option("--document", help="only the whole mapping document then (JSON)")] = False,
) -> None:
    """One version: who, when, and what it changed (or, with --document, the whole mapping then)."""
    from broker.cli.history import show

    cfg = _load(config)
    _history(lambda: show(cfg, number=number, as_json=as_json, document=document))


@history_app.command("diff")
def history_diff(
    old: Annotated[int, typer.Argument(min=0, help="from this version (0: the empty mapping)")],
    new: Annotated[int, typer.Argument(min=0, help="to this version")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="as the admin API answers it")] = False,
) -> None:
    """What changed from one version to another, field by field."""
    from broker.cli.history import diff

    cfg = _load(config)
    _history(lambda: diff(cfg, old=old, new=new, as_json=as_json))


@history_app.command("restore")
def history_restore(
    number: Annotated[int, typer.Argument(min=1, help="the version to restore")],
    config: ConfigOpt = None,
    apply: Annotated[bool, typer.Option("--apply", help="apply it (default: the dry-run plan only)")] = False,
    plan_hash: Annotated[str | None, typer.Option("--plan-hash", help="apply only if the plan is still this dry run's")] = None,
    allow_deletes: Annotated[bool, typer.Option("--allow-deletes", help="let it delete API objects the version lacks")] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="who runs it, for the version and audit (default: the OS user)")] = None,
) -> None:
    """Restore a version: an import of its document (the configuration file's objects stay as the file says)."""
    import getpass

    from broker.cli.history import restore

    cfg = _load(config)
    _history(lambda: restore(cfg, number=number, apply=apply, plan_hash=plan_hash, allow_deletes=allow_deletes,
                             actor=actor or getpass.getuser()))


@audit_app.command("verify")
def audit_verify(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as the admin API answers it")] = False,
) -> None:
    """Walk the audit chain from its anchor in id order; exit 1 at the first broken link (named)."""
    from broker.cli.audit import verify, verify_text

    cfg = _load(config)
    report = None

    def run() -> str:
        nonlocal report
        report = verify(cfg)
        return verify_text(report, as_json=as_json)

    _history(run)
    if report is not None and not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    config: ConfigOpt = None,
    since: Annotated[datetime | None, typer.Option(help="only events at or after this time (ISO 8601, UTC when no offset)",
                                                   formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])] = None,
    cursor: Annotated[str | None, typer.Option(help="continue after a previous export (its next cursor)")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="lines at most")] = 100_000,
) -> None:
    """The audit trail as JSON Lines on stdout, oldest first; the next cursor on stderr."""
    from broker.cli.audit import export

    cfg = _load(config)
    _history(lambda: "next cursor: " + export(cfg, out=sys.stdout, since=since, cursor=cursor, limit=limit), err=True)


@audit_app.command("purge")
def audit_purge(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only say what would be deleted")] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="who runs it, for the audit trail (default: the OS user)")] = None,
) -> None:
    """Delete the audit rows older than audit.retention_days, oldest first, behind a chain anchor (audited)."""
    import getpass

    from broker.cli.audit import purge

    cfg = _load(config)
    _history(lambda: purge(cfg, dry_run=dry_run, actor=actor or getpass.getuser()))


@app.command("check-directory")
def check_directory(
    user: Annotated[str, typer.Option("--user", "-u", help="the username to look up (as a person would type it)")],
    config: ConfigOpt = None,
    no_bind: Annotated[bool, typer.Option("--no-bind", help="look the user up only; do not ask for the password")] = False,
) -> None:
    """Show what the broker sees of one account: DN, immutable id, status, groups and role grants."""
    from broker.cli.check_directory import check_directory as run_check

    cfg = _load(config)
    ask = None if no_bind else (lambda: typer.prompt(f"password for {user}", hide_input=True, default="", show_default=False))
    try:
        report = run_check(cfg, user, password=ask)
    except BrokerError as exc:  # an outage or a misconfiguration: say so, no stack trace
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(3) from None
    typer.echo("\n".join(report.lines))
    if not report.ok:
        raise typer.Exit(1)


@org_app.command("discover")
def org_discover(
    config: ConfigOpt = None,
    apply: Annotated[bool, typer.Option("--apply", help="register the new accounts (organizations.registration)")] = False,
    actor: Annotated[str | None, typer.Option("--actor", help="who runs it, for the audit trail (default: the OS user)")] = None,
) -> None:
    """List the organization's accounts against the mapping; with --apply register the new ones (audited)."""
    import getpass

    from broker.aws.iam_access import AccessProblem
    from broker.cli.org import CannotRun
    from broker.cli.org import org_discover as run_discover

    cfg = _load(config)
    try:
        result = run_discover(cfg, apply=apply, actor=actor or getpass.getuser())
    except CannotRun as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except AccessProblem as problem:
        typer.echo(f"error [{problem.code}]: {problem.reason}\n  fix: {problem.fix}", err=True)
        raise typer.Exit(1) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo("\n".join(result.lines()))
    if not result.ok:
        raise typer.Exit(1)


@report_app.command("access")
def report_access(
    config: ConfigOpt = None,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="12-digit account id or alias")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="role name or role ARN")] = None,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="rows whose membership path passes through it")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="username or immutable id")] = None,
    format: Annotated[Literal["csv", "json"], typer.Option("--format", "-f", help="csv or json")] = "csv",
) -> None:
    """Who can assume each role, through which group (nested path), granted by which mapping row or
    naming rule, on which channels, with the session cap; read from the directory now."""
    from broker.cli.report import access_report
    from broker.reports.access import ReportFilter

    cfg = _load(config)
    flt = ReportFilter(account=account, role=role, group=group, user=user)
    try:
        note = access_report(cfg, flt, format=format, write=lambda chunk: typer.echo(chunk, nl=False))
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise typer.Exit(2 if exc.status < 500 else 3) from None
    if note:
        typer.echo(f"note: {note}", err=True)


def main() -> None:
    try:
        app()
    except BrokerError as exc:
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()


@review_app.command("snapshot")
def review_snapshot(
    config: ConfigOpt = None,
    account: Annotated[str | None, typer.Option("--account", "-a", help="12-digit account id or alias")] = None,
    role: Annotated[str | None, typer.Option("--role", help="role name or role ARN")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="rows whose membership path passes through it")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="username or immutable id")] = None,
    title: Annotated[str | None, typer.Option("--title", help="e.g. 'Q4 2026, production'")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="who takes it, for the audit trail (default: the OS user)")] = None,
) -> None:
    """Save the access report now (with these filters) as a review snapshot; prints its number and SHA-256."""
    import getpass

    from broker.cli.review import snapshot
    from broker.reports.access import ReportFilter

    cfg = _load(config)
    flt = ReportFilter(account=account, role=role, group=group, user=user)
    _history(lambda: snapshot(cfg, flt, title=title, actor=actor or getpass.getuser()))


@review_app.command("list")
def review_list(
    config: ConfigOpt = None, limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many, newest first")] = 20
) -> None:
    """The latest snapshots: number, time, actor, rows, attestations, hash (start), title, filter."""
    from broker.cli.review import list_lines

    cfg = _load(config)
    _history(lambda: "\n".join(list_lines(cfg, limit=limit)))


@review_app.command("show")
def review_show(
    number: Annotated[int, typer.Argument(min=1, help="the snapshot number")],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="as the admin API answers it")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="its rows: the CSV whose SHA-256 is its hash, byte for byte")] = False,
) -> None:
    """A snapshot: who took it, when, its hash and attestations (or, with --csv, its rows)."""
    from broker.cli.review import show

    cfg = _load(config)
    if as_csv:
        out = sys.stdout.buffer
        _history(lambda: show(cfg, number=number, as_json=False, write=out.write))  # the bytes, no line added
        return
    _history(lambda: show(cfg, number=number, as_json=as_json))


@review_app.command("changes")
def review_changes(
    number: Annotated[int, typer.Argument(min=1, help="the snapshot number")],
    config: ConfigOpt = None,
    against: Annotated[str, typer.Option("--against", help="now (the directory and mapping now), or a snapshot number")] = "now",
    as_json: Annotated[bool, typer.Option("--json", help="as the admin API answers it")] = False,
) -> None:
    """Who gained or lost each role since the snapshot, and why (directory, mapping, or both)."""
    from broker.cli.review import changes

    cfg = _load(config)
    if against != "now" and not against.isdigit():
        typer.echo("error: --against is now or a snapshot number", err=True)
        raise typer.Exit(2)
    other = None if against == "now" else int(against)
    _history(lambda: changes(cfg, number=number, against=other, as_json=as_json))


@review_app.command("attest")
def review_attest(
    number: Annotated[int, typer.Argument(min=1, help="the snapshot number")],
    config: ConfigOpt = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="approved, changes_requested, rejected or noted")
    ] = None,
    comment: Annotated[str, typer.Option("--comment", help="what the reviewer says (at most 4,000 characters)")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="who reviewed it (default: the OS user)")] = None,
) -> None:
    """Attest a snapshot: who reviewed it, when, a decision and a comment (audited)."""
    import getpass

    from broker.cli.review import attest

    cfg = _load(config)
    _history(lambda: attest(cfg, number=number, decision=decision, comment=comment, actor=actor or getpass.getuser()))

"""`awsbroker`: the employee's CLI. A client only: it imports httpx/typer, the standard library and
the delivery formats, never the server side (connectors, minting, db, web), so a laptop needs no
xmlsec, database driver or FastAPI.

Exit codes: 0 ok · 1 error · 2 usage · 3 login required · 4 denied (role not granted, channel
not allowed) · 5 broker unreachable · 6 login failed (denied, expired, wrong password) ·
7 the broker could not do it (5xx, rate limited). Messages go to stderr and never carry a secret.
"""

from __future__ import annotations

import functools
import getpass
import itertools
import json
import os
import secrets
import sys
import time
import webbrowser
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from awsbroker import __version__, cache, delivery
from awsbroker import config as awsconfig
from awsbroker.client import EXIT_DENIED, EXIT_ERROR, EXIT_USAGE, Broker, CliError, MfaNeeded, broker_url

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Get AWS credentials from the federation broker: `awsbroker login`, then `awsbroker configure`.",
    epilog="Exit codes: 1 error, 2 usage, 3 login required, 4 denied, 5 broker unreachable, "
    "6 login failed, 7 broker error.",
)

P = ParamSpec("P")
R = TypeVar("R")

UrlOpt = Annotated[str | None, typer.Option("--url", help="the broker, e.g. https://broker.example.com "
                                               "(default: $AWSBROKER_URL, else the one you logged in to)")]
AccountOpt = Annotated[str, typer.Option("--account", "-a", help="12-digit account id or alias")]
RoleOpt = Annotated[str, typer.Option("--role", "-r", help="role name")]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"awsbroker: {message}", err=True)
    raise typer.Exit(code)


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """CliError → its message on stderr and its exit code; nothing else leaks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            _fail(exc.message, exc.code)
        except (OSError, ValueError) as exc:
            _fail(f"{type(exc).__name__}: {exc}", EXIT_ERROR)

    return wrapper


def _broker(url: str | None) -> Broker:
    return Broker(broker_url(url))


class Spinner:
    """A small spinner on stderr while waiting (only on a terminal)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tty = sys.stderr.isatty()
        self.frames = itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
        if not self.tty:
            typer.echo(text, err=True)

    def tick(self) -> None:
        if self.tty:
            sys.stderr.write(f"\r{next(self.frames)} {self.text}")
            sys.stderr.flush()

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        typer.echo(text, err=True)


@app.command()
@handled
def login(
    url: UrlOpt = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="only print the address to open")] = False,
    password: Annotated[bool, typer.Option("--password", help="headless: directory username + password "
                                           "(only if the broker allows it; read from $AWSBROKER_PASSWORD or asked)")] = False,
    username: Annotated[str | None, typer.Option("--username", help="with --password")] = None,
    mfa: Annotated[bool, typer.Option("--mfa", help="with a second factor now (roles with require_mfa)")] = False,
) -> None:
    """Sign in through the browser (device login): no password is typed into this terminal."""
    broker = _broker(url)
    if password:
        user = username or os.environ.get("AWSBROKER_USERNAME") or typer.prompt("Username", err=True)
        secret = os.environ.get("AWSBROKER_PASSWORD")
        if secret is None:
            secret = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        tokens = broker.password_login(user, secret)
    else:
        tokens = _device_login(broker, no_browser=no_browser, mfa=mfa)
    broker.save_tokens(tokens)
    who = broker.whoami()
    typer.echo(f"Logged in to {broker.url} as {who.get('username')}.", err=True)


def _device_login(broker: Broker, *, no_browser: bool, mfa: bool) -> dict[str, Any]:
    """The browser device login (RFC 8628); ``mfa``: the approval asks for a second factor first."""
    grant = broker.start_device_login(mfa=mfa)
    if mfa:
        typer.echo("This needs a second factor: the page asks for it before you approve.", err=True)
    typer.echo(f"To sign in, open {grant['verification_uri']}\nand enter the code:  {grant['user_code']}", err=True)
    if grant.get("verification_uri_complete"):
        # the broker's confirmation page shows where and when this login started before anyone approves it
        typer.echo(f"or open {grant['verification_uri_complete']}\n"
                   "and check that the page shows the same code before you approve.", err=True)
    if not no_browser and grant.get("verification_uri_complete"):
        try:
            webbrowser.open(grant["verification_uri_complete"], new=2)
        except webbrowser.Error:
            pass
    spinner = Spinner("Waiting for approval in the browser…")
    tokens = broker.wait_for_approval(grant, tick=spinner.tick)
    spinner.done("Approved.")
    return tokens


def _stepped_up(broker: Broker, call: Callable[[], R]) -> R:
    """``call``; on ``mfa_required`` a device login with a second factor (the browser, like
    `awsbroker login`), then ``call`` once more. The new login replaces the saved one."""
    try:
        return call()
    except MfaNeeded:
        typer.echo("awsbroker: this role needs a second factor; signing in again with one.", err=True)
        broker.save_tokens(_device_login(broker, no_browser=os.environ.get("AWSBROKER_NO_BROWSER") == "1", mfa=True))
        return call()


@app.command()
@handled
def logout(url: UrlOpt = None) -> None:
    """Revoke this login at the broker and remove the tokens and cached credentials (the broker's
    URL is kept: the next command says "login required", `awsbroker login` signs in again)."""
    saved = cache.load_login()
    if saved and saved.get("refresh_token"):
        broker = Broker(saved["url"])
        try:
            broker.revoke(saved["refresh_token"])
        except CliError as exc:
            typer.echo(f"awsbroker: could not revoke at the broker ({exc.message}); removing the local login anyway",
                       err=True)
    removed = cache.forget_everything()
    where = f" of {saved['url']}" if saved and saved.get("url") else ""
    typer.echo(f"Logged out{where} (the login and {removed} cached credential(s) removed; "
               "`awsbroker login` signs in again).", err=True)


@app.command()
@handled
def whoami(url: UrlOpt = None) -> None:
    """Who the broker thinks you are, and your directory groups."""
    typer.echo(json.dumps(_broker(url).whoami(), indent=2))


@app.command()
@handled
def roles(url: UrlOpt = None, as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """Every account and role you may use."""
    items = _broker(url).roles()
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo("No roles: none of your directory groups gives access to an AWS account.", err=True)
        return
    typer.echo(f"{'ACCOUNT':<20} {'ACCOUNT ID':<13} {'ENV':<6} {'ROLE':<24} {'CONSOLE':<8} {'CLI':<4} ACCESS")
    for r in items:
        access = "eligible (awsbroker request)" if r.get("access") == "eligible" else "standing"
        typer.echo(f"{(r.get('account_alias') or '-'):<20} {r['account_id']:<13} {(r.get('environment') or '-'):<6} "
                   f"{r['role_name']:<24} {'yes' if r.get('console') else 'no':<8} "
                   f"{'yes' if r.get('cli') else 'no':<4} {access}")


@app.command()
@handled
def credentials(
    account: AccountOpt,
    role: RoleOpt,
    url: UrlOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="json | env | ini")] = "json",
    shell: Annotated[str, typer.Option(help="for --format env: bash | fish | powershell")] = "bash",
    profile: Annotated[str, typer.Option(help="for --format ini: the section name")] = "default",
    region: Annotated[str | None, typer.Option(help="the region to set (env, ini); default: the account's")] = None,
    duration: Annotated[int | None, typer.Option(help="seconds (900-43200; clamped to the role's maximum)")] = None,
) -> None:
    """Temporary credentials on stdout: `eval "$(awsbroker credentials -a dev -r Admin -f env)"`."""
    if format not in ("json", "env", "ini"):
        raise CliError("--format is json, env or ini", EXIT_USAGE)
    if shell not in delivery.SHELLS:
        raise CliError(f"--shell is one of {', '.join(delivery.SHELLS)}", EXIT_USAGE)
    broker = _broker(url)
    data, account_region = _stepped_up(broker, lambda: broker.issue(account, role, duration))
    if format == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    creds = delivery.parse_credential_process(data)
    region = region or account_region  # the account's default region, as the portal's CLI panel sets it
    if format == "env":
        chosen = next(s for s in delivery.SHELLS if s == shell)  # checked above
        typer.echo(delivery.env(creds, shell=chosen, region=region), nl=False)
    else:
        typer.echo(delivery.ini(creds, profile=profile, region=region), nl=False)


@app.command("credential-process")
@handled
def credential_process(account: AccountOpt, role: RoleOpt, url: UrlOpt = None) -> None:
    """For `credential_process` in ~/.aws/config: cached (0600), refreshed 5 minutes before expiry."""
    broker = _broker(url)
    typer.echo(json.dumps(_stepped_up(broker, lambda: broker.cached_credentials(account, role))))


@app.command()
@handled
def request(
    account: AccountOpt,
    role: RoleOpt,
    reason: Annotated[str, typer.Option("--reason", help="why you need the role (the approver reads it)")] = "",
    duration: Annotated[str | None, typer.Option("--duration", help="how long: seconds or e.g. 2h, 90m "
                                                 "(default: the role's policy maximum)")] = None,
    ticket: Annotated[str | None, typer.Option("--ticket", help="a ticket id, if the role's policy wants one")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait until the request is approved or denied")] = False,
    timeout: Annotated[int, typer.Option("--timeout", min=1, max=86400, help="with --wait: give up after this many "
                                         "seconds (the request stays pending)")] = 900,
    interval: Annotated[int, typer.Option("--interval", min=1, max=300, help="with --wait: seconds between checks")] = 5,
    url: UrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the request as JSON on stdout")] = False,
) -> None:
    """Ask for an eligible role (just-in-time access); an approver approves it in the portal."""
    broker = _broker(url)
    made = broker.request_access(account, role, reason=reason, duration=duration, ticket=ticket)
    rid = made["id"]
    if made.get("state") == "pending":
        typer.echo(f"Request {rid}: {made['role_name']} in {made['account_id']} for {made['duration']} s is pending "
                   "approval (approvers see it in the portal under Requests).", err=True)
    if wait and made.get("state") == "pending":
        spinner = Spinner(f"Waiting for approval of request {rid}…")
        deadline = time.monotonic() + timeout
        while made.get("state") == "pending":
            if time.monotonic() >= deadline:
                spinner.done(f"Still pending after {timeout} s (request {rid}); check again with --wait later.")
                raise typer.Exit(EXIT_ERROR)
            for _ in range(interval * 4):
                spinner.tick()
                time.sleep(0.25)
            made = broker.access_request(rid)
        spinner.done(f"Request {rid}: {made.get('state')}.")
    if as_json:
        typer.echo(json.dumps(made, indent=2))
    state = made.get("state")
    if state == "approved":
        typer.echo(f"Approved: {made['role_name']} in {made['account_id']} until {made.get('ends_at')}. "
                   f"awsbroker credentials -a {account} -r {role}", err=True)
    elif state in ("denied", "cancelled"):
        _fail(f"request {rid} was {state}" + (f" by {made['decided_by']}" if made.get("decided_by") else ""),
              EXIT_DENIED)


@app.command()
@handled
def console(
    account: AccountOpt,
    role: RoleOpt,
    url: UrlOpt = None,
    service: Annotated[str | None, typer.Option(help="console service to open, e.g. s3")] = None,
    region: Annotated[str | None, typer.Option(help="region, e.g. eu-west-1")] = None,
    print_url: Annotated[bool, typer.Option("--print", help="print the sign-in URL instead of opening a browser "
                                            "(it signs anyone in for 15 minutes: do not share it)")] = False,
) -> None:
    """Open the AWS console as a role in your browser."""
    broker = _broker(url)
    link = _stepped_up(broker, lambda: broker.console(account, role, service, region))
    if print_url:
        typer.echo(link["url"])
        return
    try:
        opened = webbrowser.open(link["url"], new=2)
    except webbrowser.Error:
        opened = False
    if not opened:
        raise CliError("no browser could be opened here: use --print and open the URL yourself", EXIT_ERROR)
    typer.echo(f"Opened the console ({link.get('destination', '')}).", err=True)


@app.command()
@handled
def configure(
    url: UrlOpt = None,
    prefix: Annotated[str, typer.Option(help="profile name prefix")] = "",
    command: Annotated[str | None, typer.Option(help="how the AWS CLI runs awsbroker "
                                                "(default: the absolute path of this awsbroker)")] = None,
    with_url: Annotated[bool, typer.Option("--with-url/--no-url", help="write --url into each profile")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the profiles, change nothing")] = False,
) -> None:
    """Write one ~/.aws/config profile per role you may use on the command line (idempotent)."""
    broker = _broker(url)
    program = awsconfig.awsbroker_command(command)
    if program is None:
        raise CliError("cannot find the awsbroker program on PATH: pass --command /path/to/awsbroker", EXIT_USAGE)
    if command and not awsconfig.runnable(command):
        typer.echo(f"awsbroker: warning: {command!r} is neither on PATH nor an executable file: "
                   "the AWS CLI will fail to run it", err=True)
    endpoint = broker.cli_config().get("endpoint_url")
    profiles = awsconfig.profiles_for(broker.roles(), command=program, url=broker.url if with_url else None,
                                      prefix=prefix, endpoint_url=endpoint)
    path = awsconfig.aws_config_path()
    if dry_run:
        typer.echo(awsconfig.apply("", profiles), nl=False)
        return
    changed = awsconfig.write(path, profiles)
    names = ", ".join(p.name for p in profiles) or "none"
    typer.echo(f"{'Updated' if changed else 'Unchanged'}: {path} (profiles: {names}). "
               f"Try: aws sts get-caller-identity --profile {profiles[0].name if profiles else '<name>'}", err=True)
    if endpoint:
        typer.echo(f"SANDBOX: the profiles use the broker's sandbox STS at {endpoint} (endpoint_url), "
                   "not AWS.", err=True)


@app.command("serve-credentials")
@handled
def serve_credentials(
    account: AccountOpt,
    role: RoleOpt,
    url: UrlOpt = None,
    port: Annotated[int, typer.Option(help="loopback port (0: any free port)")] = 0,
) -> None:
    """A loopback container-credentials endpoint; prints the two variables to export (stdout)."""
    from awsbroker.serve import PATH, make_server

    broker = _broker(url)
    token = os.environ.get("AWSBROKER_CONTAINER_TOKEN") or secrets.token_urlsafe(32)

    def on_error(exc: Exception) -> str:
        return exc.message if isinstance(exc, CliError) else type(exc).__name__

    server = make_server(port, token, lambda: broker.cached_credentials(account, role), on_error)
    host, bound = server.socket.getsockname()[:2]
    typer.echo(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{host}:{bound}{PATH}")
    typer.echo(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={token}")
    sys.stdout.flush()
    typer.echo(f"Serving {role} in {account} on http://{host}:{bound}{PATH} (Ctrl-C to stop).", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

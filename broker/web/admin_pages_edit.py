"""The admin pages that write: group mappings (/admin/mappings; an OU/tag-targeted mapping is
``org-<id>``, the ref the grants' reasons carry) and naming rules (/admin/rules): list, filter,
create, edit, delete (a confirmation page, then a POST).

Every write is the admin API's own store call (``MappingSpec`` / ``RuleSpec`` validated by the
same models, the same store method), so error codes, history versions and audit rows are the
API's; the actor is ``directory:<username>``. A refused form comes back with the message beside
its field (422, or the store error's status) and the input kept. Objects declared in the config
file are shown read-only. Every POST carries the session's CSRF token.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from broker.errors import BrokerError, NotFound
from broker.mapping.model import RULE_NAME, MappingSpec, RuleSpec
from broker.web.admin_forms import MappingForm, Problems, RuleForm, problems_of
from broker.web.admin_session import AdminVisit, admin_visit
from broker.web.deps import services_of

router = APIRouter(prefix="/admin", include_in_schema=False, tags=["admin pages"])

Text = Annotated[str, Form(max_length=1024)]
Long = Annotated[str, Form(max_length=4096)]
Filter = Annotated[str, Query(max_length=1024)]
Ref = Annotated[str, Path(max_length=40)]
RuleName = Annotated[str, Path(max_length=64)]
PAGE = 100
MAX_ID = 2**63 - 1
_MAPPING_REF = re.compile(r"^(?:org-)?[0-9]{1,19}$")
"""What the notice after a delete may name (the redirect's query): a mapping ref, nothing else."""
READ_ONLY = "Declared in the config file; change it there. It is read-only here and through the API."


KEPT_ON_EDIT = ("access", "policy", "require_mfa", "mfa_max_age")
"""Grant options the edit forms do not show (yet): an edit keeps them as they are."""


def _kept(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view[k] for k in KEPT_ON_EDIT if k in view}


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _checked(value: str) -> bool:
    return value not in ("", "off", "false", "0")


# ---- mappings ----


def _mapping_ref(ref: str) -> tuple[bool, int]:
    """"12" → (False, 12); "org-3" → (True, 3); anything else: NotFound."""
    org = ref.startswith("org-")
    digits = ref[4:] if org else ref
    if not digits.isascii() or not digits.isdigit() or not 1 <= int(digits) <= MAX_ID:
        raise NotFound(f"no mapping {ref!r}")
    return org, int(digits)


def _get_mapping(request: Request, ref: str) -> dict[str, Any]:
    store = services_of(request).store
    org, number = _mapping_ref(ref)
    view = store.get_org_mapping(number) if org else store.get_mapping(number)
    return {**view, "ref": f"org-{number}" if org else str(number)}


def _mapping_list(visit: AdminVisit, *, group: str, account: str, role: str, cursor: int | None,
                  form: MappingForm, problems: Problems, notice: str = "") -> Response:
    store = services_of(visit.request).store
    try:
        items = store.list_mappings(group=group.strip() or None, account=account.strip() or None,
                                    role=role.strip() or None, limit=PAGE, after_id=cursor)
        org_items = store.list_org_mappings(group=group.strip() or None)
        accounts = store.list_accounts()
    except BrokerError as exc:
        problems.add("", f"{exc.message} ({exc.code})")
        items, org_items, accounts = [], [], []
    given = {k: v for k, v in (("group", group), ("account", account), ("role", role)) if v.strip()}
    more = f"/admin/mappings?{urlencode({**given, 'cursor': items[-1]['id']})}" if len(items) == PAGE else None
    return visit.render(
        "admin_mappings.html", status=problems.status if problems else 200, title="Mappings", nav="mappings",
        items=items, org_items=org_items, f={"group": group, "account": account, "role": role}, more=more,
        form=form, problems=problems, notice=notice, accounts=accounts, read_only=READ_ONLY,
    )


@router.get("/mappings")
def mappings(request: Request, group: Filter = "", account: Filter = "", role: Filter = "",
             cursor: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
             deleted: Annotated[str, Query(max_length=40)] = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    notice = f"Mapping {deleted} was deleted." if _MAPPING_REF.match(deleted) else ""
    return _mapping_list(visit, group=group, account=account, role=role, cursor=cursor, form=MappingForm(),
                         problems=Problems(), notice=notice)


def _mapping_form(group: str, target: str, account: str, ou: str, tag: str, role: str, session_duration: str,
                  console: str, cli: str, description: str) -> MappingForm:
    return MappingForm(group=group, target=target, account=account, ou=ou, tag=tag, role=role,
                       session_duration=session_duration, console=_checked(console), cli=_checked(cli),
                       description=description)


@router.post("/mappings")
def create_mapping(
    request: Request, csrf_token: Text = "", group: Text = "", target: Text = "account", account: Text = "",
    ou: Text = "", tag: Text = "", role: Text = "", session_duration: Text = "", console: Text = "",
    cli: Text = "", description: Text = "",
) -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    form = _mapping_form(group, target, account, ou, tag, role, session_duration, console, cli, description)
    store = services_of(request).store
    try:
        spec = MappingSpec.model_validate(form.body())
        if spec.accounts is not None:
            view = store.create_org_mapping(spec, visit.ctx)
            ref = f"org-{view['id']}"
        else:
            view = store.create_mapping(spec, visit.ctx)
            ref = str(view["id"])
    except (ValidationError, BrokerError) as exc:
        return _mapping_list(visit, group="", account="", role="", cursor=None, form=form,
                             problems=problems_of(exc, MappingForm.names()))
    return _see(f"/admin/mappings/{ref}?saved=1")


def _mapping_page(visit: AdminVisit, view: dict[str, Any], form: MappingForm, problems: Problems,
                  notice: str = "") -> Response:
    return visit.render("admin_mapping.html", status=problems.status if problems else 200,
                        title=f"Mapping {view['ref']}", nav="mappings", view=view, form=form, problems=problems,
                        notice=notice, read_only=READ_ONLY)


@router.get("/mappings/{ref}")
def mapping(request: Request, ref: Ref, saved: Annotated[str, Query(max_length=8)] = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        view = _get_mapping(request, ref)
    except BrokerError as exc:
        return visit.error(exc)
    return _mapping_page(visit, view, MappingForm.of_view(view), Problems(), notice="Saved." if saved else "")


@router.post("/mappings/{ref}")
def update_mapping(
    request: Request, ref: Ref, csrf_token: Text = "", group: Text = "", target: Text = "account",
    account: Text = "", ou: Text = "", tag: Text = "", role: Text = "", session_duration: Text = "",
    console: Text = "", cli: Text = "", description: Text = "",
) -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    store = services_of(request).store
    try:
        view = _get_mapping(request, ref)
    except BrokerError as exc:
        return visit.error(exc)
    form = _mapping_form(group, target, account, ou, tag, role, session_duration, console, cli, description)
    org, number = _mapping_ref(view["ref"])
    try:
        spec = MappingSpec.model_validate(form.body() | _kept(view))
        if org:
            store.update_org_mapping(number, spec, visit.ctx)
        else:
            store.update_mapping(number, spec, visit.ctx)
    except (ValidationError, BrokerError) as exc:
        return _mapping_page(visit, view, form, problems_of(exc, MappingForm.names()))
    return _see(f"/admin/mappings/{view['ref']}?saved=1")


@router.get("/mappings/{ref}/delete")
def confirm_mapping_delete(request: Request, ref: Ref) -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        view = _get_mapping(request, ref)
    except BrokerError as exc:
        return visit.error(exc)
    what = f"the mapping of group {view['group']} to {view['role']}"
    return visit.render("admin_confirm.html", title=f"Delete mapping {view['ref']}?", nav="mappings", what=what,
                        action=f"/admin/mappings/{view['ref']}/delete", back=f"/admin/mappings/{view['ref']}",
                        view=view, read_only=READ_ONLY)


@router.post("/mappings/{ref}/delete")
def delete_mapping(request: Request, ref: Ref, csrf_token: Text = "") -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    store = services_of(request).store
    try:
        org, number = _mapping_ref(ref)
        if org:
            store.delete_org_mapping(number, visit.ctx)
        else:
            store.delete_mapping(number, visit.ctx)
    except BrokerError as exc:
        return visit.error(exc)
    return _see(f"/admin/mappings?{urlencode({'deleted': ref})}")


# ---- naming rules ----


def _rule_list(visit: AdminVisit, form: RuleForm, problems: Problems, notice: str = "") -> Response:
    try:
        items = services_of(visit.request).store.list_rules()
    except BrokerError as exc:
        problems.add("", f"{exc.message} ({exc.code})")
        items = []
    return visit.render("admin_rules.html", status=problems.status if problems else 200, title="Naming rules",
                        nav="rules", items=items, form=form, problems=problems, notice=notice, read_only=READ_ONLY)


@router.get("/rules")
def rules(request: Request, deleted: Annotated[str, Query(max_length=64)] = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    notice = f"Rule {deleted} was deleted." if RULE_NAME.match(deleted) else ""
    return _rule_list(visit, RuleForm(), Problems(), notice=notice)


def _rule_form(name: str, pattern: str, target: str, ou: str, tag: str, session_duration: str, console: str,
               cli: str, description: str) -> RuleForm:
    return RuleForm(name=name, pattern=pattern, target=target, ou=ou, tag=tag, session_duration=session_duration,
                    console=_checked(console), cli=_checked(cli), description=description)


@router.post("/rules")
def create_rule(
    request: Request, csrf_token: Text = "", name: Text = "", pattern: Long = "", target: Text = "none",
    ou: Text = "", tag: Text = "", session_duration: Text = "", console: Text = "", cli: Text = "",
    description: Text = "",
) -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    form = _rule_form(name, pattern, target, ou, tag, session_duration, console, cli, description)
    try:
        view = services_of(request).store.create_rule(RuleSpec.model_validate(form.body()), visit.ctx)
    except (ValidationError, BrokerError) as exc:
        return _rule_list(visit, form, problems_of(exc, RuleForm.names()))
    return _see(f"/admin/rules/{quote(view['name'], safe='')}?saved=1")


def _rule_page(visit: AdminVisit, view: dict[str, Any], form: RuleForm, problems: Problems,
               notice: str = "") -> Response:
    return visit.render("admin_rule.html", status=problems.status if problems else 200,
                        title=f"Naming rule {view['name']}", nav="rules", view=view, form=form, problems=problems,
                        notice=notice, read_only=READ_ONLY)


@router.get("/rules/{name}")
def rule(request: Request, name: RuleName, saved: Annotated[str, Query(max_length=8)] = "") -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        view = services_of(request).store.get_rule(name)
    except BrokerError as exc:
        return visit.error(exc)
    return _rule_page(visit, view, RuleForm.of_view(view), Problems(), notice="Saved." if saved else "")


@router.post("/rules/{name}")
def update_rule(
    request: Request, name: RuleName, csrf_token: Text = "", pattern: Long = "", target: Text = "none",
    ou: Text = "", tag: Text = "", session_duration: Text = "", console: Text = "", cli: Text = "",
    description: Text = "",
) -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    store = services_of(request).store
    try:
        view = store.get_rule(name)
    except BrokerError as exc:
        return visit.error(exc)
    form = _rule_form(view["name"], pattern, target, ou, tag, session_duration, console, cli, description)
    try:
        store.update_rule(view["name"], RuleSpec.model_validate(form.body() | _kept(view)), visit.ctx)
    except (ValidationError, BrokerError) as exc:
        return _rule_page(visit, view, form, problems_of(exc, RuleForm.names()))
    return _see(f"/admin/rules/{quote(view['name'], safe='')}?saved=1")


@router.get("/rules/{name}/delete")
def confirm_rule_delete(request: Request, name: RuleName) -> Response:
    visit = admin_visit(request)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        view = services_of(request).store.get_rule(name)
    except BrokerError as exc:
        return visit.error(exc)
    path = "/admin/rules/" + quote(view["name"], safe="")
    return visit.render("admin_confirm.html", title=f"Delete naming rule {view['name']}?", nav="rules",
                        what=f"the naming rule {view['name']} ({view['pattern']})", action=path + "/delete",
                        back=path, view=view, read_only=READ_ONLY)


@router.post("/rules/{name}/delete")
def delete_rule(request: Request, name: RuleName, csrf_token: Text = "") -> Response:
    visit = admin_visit(request, csrf_token=csrf_token)
    if not isinstance(visit, AdminVisit):
        return visit
    try:
        services_of(request).store.delete_rule(name, visit.ctx)
    except BrokerError as exc:
        return visit.error(exc)
    return _see(f"/admin/rules?{urlencode({'deleted': name})}")

"""Helpers shared by the accounts tests: UIA auth dicts, database probes."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.forms import BooleanField

from tests.conftest import MatrixTestClient, Persona, Response


def password_auth(persona: Persona, session: str | None, password: str | None = None) -> dict:
    """The ``auth`` dict of an ``m.login.password`` UIA stage for ``persona``."""
    auth: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": persona.user_id},
        "password": persona.password if password is None else password,
    }
    if session is not None:
        auth["session"] = session
    return auth


def with_password_uia(
    api: MatrixTestClient, method: str, path: str, persona: Persona, body: dict | None = None
) -> Response:
    """Make a UIA-protected request as ``persona``: expect the 401, then re-auth by password."""
    body = body or {}
    first = api.request(method, path, body, token=persona.access_token)
    assert first.status == 401, first.body
    assert first.body["flows"] == [{"stages": ["m.login.password"]}]
    return api.request(
        method,
        path,
        {**body, "auth": password_auth(persona, first.body["session"])},
        token=persona.access_token,
    )


def whoami(api: MatrixTestClient, token: str) -> Response:
    return api.get("account/whoami", token=token)


def database_dump() -> str:
    """Every value of every row of every table, as one string."""
    values: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                values.extend(
                    bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v)
                    for v in row
                )
    return "\n".join(values)


def change_form_data(response: Any) -> dict[str, Any]:
    """The POST data the admin change form would send back unchanged."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for name, field in form.fields.items():
            bound = form[name]
            value = bound.value()
            if isinstance(field, BooleanField):
                if value:
                    data[bound.html_name] = "on"
            elif value is not None:
                data[bound.html_name] = value
    return data

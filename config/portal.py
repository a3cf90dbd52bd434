"""The portal's operator actions on one object: a button on its page, a confirmation form.

A model admin lists its :class:`ObjectAction` s in ``object_actions``. Each becomes a
button on the object's change page and a page at ``<object_id>/do/<name>/`` with a form
(the action's options and a confirmation); posting it runs the action, which calls an
operator action function (operators/services, which does the work through the domain
services and writes the audit entry) and returns the message shown to the operator.
A :class:`protocol.errors.MatrixError` or ``ValueError`` from the action is shown as an
error and the form comes back: nothing was done.

Everything here is read-only for Django's own forms: the admin never writes a protocol
row itself, it only calls services.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.api.auth import client_ip
from protocol.errors import MatrixError


def actor(request: HttpRequest) -> dict[str, str]:
    """The keyword arguments every operator action takes from the portal: the operator's
    Matrix user ID, ``via="portal"`` and the address the request came from."""
    user_id = getattr(request.user, "user_id", "") or request.user.get_username()
    return {"actor": user_id, "via": "portal", "ip": client_ip(request)}


class ConfirmForm(forms.Form):
    """An action with no options: the operator only confirms."""

    confirm = forms.BooleanField(label="Yes, do it", required=True)


@dataclass(frozen=True)
class ObjectAction:
    """One operator action on an object of the admin's model.

    ``run(request, obj, cleaned_data)`` does it (through an operator action function)
    and returns the success message; ``shown(obj)`` says whether the button applies to
    the object as it is (no "unsuspend" on an account that is not suspended).
    """

    name: str
    label: str
    run: Callable[[HttpRequest, Any, dict[str, Any]], str]
    form: type[forms.Form] = ConfirmForm
    help: str = ""
    danger: bool = False
    shown: Callable[[Any], bool] = lambda obj: True
    initial: Callable[[Any], dict[str, Any]] | None = None

    @property
    def verb(self) -> str:
        """The label as the submit button says it (without the ellipsis)."""
        return self.label.rstrip("…")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that are the protocol's record (the event graph, devices, keys, account data,
    push rules and pushers, federation): shown, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ObjectActionsAdmin(admin.ModelAdmin):
    """A model admin whose objects are changed only through ``object_actions``: the
    change page is read-only and carries a button per action."""

    object_actions: list[ObjectAction] = []
    # Actions on no object in particular (create a registration token): buttons on the
    # list, ``run`` gets ``None`` for the object.
    list_actions: list[ObjectAction] = []
    change_form_template = "admin/trellis/change_form.html"
    change_list_template = "admin/trellis/change_list.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Every field shown is read-only: changes go through the actions.
        return [*self.get_fields(request, obj)]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        # The page shows the object; Django's form never saves it (a save would write
        # back every field as loaded, over what a service changed meanwhile).
        if request.method == "POST":
            raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        context.update(
            show_save=False,
            show_save_and_continue=False,
            show_save_and_add_another=False,
            show_delete=False,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def can_act(self, request: HttpRequest) -> bool:
        """Operator actions are for those who may change the model (superusers, or staff
        given the permission)."""
        opts = self.model._meta
        return bool(request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        act = path(
            "<path:object_id>/do/<slug:action>/",
            self.admin_site.admin_view(self.object_action_view),
            name=f"{opts.app_label}_{opts.model_name}_do",
        )
        act_on_list = path(
            "act/<slug:action>/",
            self.admin_site.admin_view(self.list_action_view),
            name=f"{opts.app_label}_{opts.model_name}_act",
        )
        return [act_on_list, act, *self.extra_urls(), *super().get_urls()]

    def extra_urls(self) -> list[URLPattern]:
        return []

    def extra_buttons(self, obj: Any) -> list[dict[str, Any]]:
        """More buttons on the object's page, to views of the admin's own."""
        return []

    def action_url(self, obj: Model, name: str) -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_do", args=[obj.pk, name])

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        buttons = []
        if obj is not None and self.can_act(request):
            buttons = [
                {"url": self.action_url(obj, a.name), "label": a.label, "danger": a.danger}
                for a in self.object_actions
                if a.shown(obj)
            ] + self.extra_buttons(obj)
        # Not "Change ...": the page shows the object; changes are its actions.
        title = str(self.model._meta.verbose_name).capitalize()
        context = {"trellis_actions": buttons, "title": title, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        opts = self.model._meta
        buttons = []
        if self.can_act(request):
            buttons = [
                {
                    "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[a.name]),
                    "label": a.label,
                    "danger": a.danger,
                }
                for a in self.list_actions
            ]
        context = {"trellis_actions": buttons, **(extra_context or {})}
        return super().changelist_view(request, context)

    def list_action_view(self, request: HttpRequest, action: str) -> Any:
        chosen = next((a for a in self.list_actions if a.name == action), None)
        if chosen is None:
            raise Http404("No such action")
        opts = self.model._meta
        return self._action_form(
            request,
            chosen,
            None,
            reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        )

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> Any:
        obj = self.get_object(request, object_id)
        chosen = next((a for a in self.object_actions if a.name == action), None)
        if obj is None or chosen is None:
            raise Http404("No such object or action")
        opts = self.model._meta
        change_page = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        return self._action_form(request, chosen, obj, change_page)

    def _action_form(
        self, request: HttpRequest, chosen: ObjectAction, obj: Any, back: str
    ) -> HttpResponse:
        if not self.can_act(request):
            raise PermissionDenied
        opts = self.model._meta
        change_page = back
        initial = chosen.initial(obj) if chosen.initial else None
        # A POST with no fields is still a submitted form (an unticked confirmation).
        form = chosen.form(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                message = chosen.run(request, obj, form.cleaned_data)
            except MatrixError as error:
                self.message_user(request, f"{error.errcode}: {error.error}", messages.ERROR)
            except ValueError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
                if obj is None:
                    return HttpResponseRedirect(back)
                return HttpResponseRedirect(self.after_action_url(obj, change_page))
        context = {
            **self.admin_site.each_context(request),
            "title": chosen.verb if obj is None else f"{chosen.verb}: {obj}",
            "form": form,
            "action": chosen,
            "opts": opts,
            "original": obj,
            "change_page": change_page,
        }
        return TemplateResponse(request, "admin/trellis/action_form.html", context)

    def after_action_url(self, obj: Model, change_page: str) -> str:
        """Where the operator goes after the action: back to the object's page, or to the
        list when the object is gone."""
        if type(obj).objects.filter(pk=obj.pk).exists():  # type: ignore[attr-defined]
            return change_page
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def run_bulk(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    one: Callable[[Any], object],
    done: str,
) -> None:
    """Run ``one`` for each selected object (an admin action over a list selection);
    report how many succeeded and each error."""
    count = 0
    for obj in objects:
        try:
            one(obj)
        except (MatrixError, ValueError) as error:
            text = error.error if isinstance(error, MatrixError) else str(error)
            model_admin.message_user(request, f"{obj}: {text}", messages.ERROR)
        else:
            count += 1
    model_admin.message_user(request, f"{done}: {count}.", messages.SUCCESS)


def pretty_json(value: Any) -> SafeString:
    return format_html(
        '<pre class="trellis-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True)
    )


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> SafeString:
    """A small HTML table; cells are escaped unless they are already safe HTML."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    if not body:
        return format_html("<p>{}</p>", "None.")
    return format_html('<table class="trellis-table"><tr>{}</tr>{}</table>', head, body)


def link(url: str, text: Any) -> SafeString:
    return format_html('<a href="{}">{}</a>', url, text)


def progress_bar(job: Any) -> SafeString:
    """An admin job's progress: a bar when it reports ``done`` of ``total``, else the
    figures it reported."""
    progress: dict[str, Any] = job.progress or {}
    done, total = progress.get("done"), progress.get("total")
    if isinstance(done, int) and isinstance(total, int) and total > 0:
        percent = min(100, done * 100 // total)
        return format_html(
            '<span class="trellis-progress" title="{}%"><span style="width: {}%"></span></span>'
            " {} / {}",
            percent,
            percent,
            done,
            total,
        )
    scalars = {k: v for k, v in progress.items() if isinstance(v, int | str)}
    return format_html("{}", ", ".join(f"{k}: {v}" for k, v in sorted(scalars.items())) or "-")


def job_table(jobs: Iterable[Any]) -> SafeString:
    """The admin jobs about an object (a user's redaction, a room's deletion), newest
    first, each linked to its page."""
    return table(
        ["job", "status", "progress", "started by", "created"],
        (
            (
                link(reverse("admin:operators_adminjob_change", args=[job.pk]), job.kind),
                job.status,
                progress_bar(job),
                job.actor,
                f"{job.created_at:%Y-%m-%d %H:%M:%S}",
            )
            for job in jobs
        ),
    )


def audit_link(target: str) -> SafeString:
    """A link to the audit log's entries about ``target``."""
    url = reverse("admin:operators_auditentry_changelist") + "?" + urlencode({"q": target})
    return link(url, "what operators did to it")

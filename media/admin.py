"""The operator's view of the media repository: what is stored, by whom, and moderation.

Quarantined media is served to nobody (not even its uploader); deleting removes the
rows and the files. Both act on chosen items, on everything their uploaders stored, or
(from "All media of a user or a room") on everything a user uploaded or a room's messages
point at.

Other servers' media cached here is listed apart ("Remote media cache": origin, size,
the cache's total), with quarantine, release and purge (delete the cached files; purged
media is fetched again when asked for, unless quarantined, which stays refused).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from config.admin import log_operator_action
from config.portal import ObjectAction, ObjectActionsAdmin, ReadOnlyAdmin, actor
from media import ids, selectors
from media.models import LocalMedia, RemoteMedia
from media.services import moderation
from operators.services import media as media_actions
from operators.services import remote_cache


def _loaded(media: QuerySet[LocalMedia]) -> list[LocalMedia]:
    # What the logs need of each item: its key and its name (the media ID).
    return list(media.only("pk", "media_id", "safe_from_quarantine"))


def _loaded_remote(media: QuerySet[RemoteMedia]) -> list[RemoteMedia]:
    # Named by their mxc URI in the logs.
    return list(media.only("pk", "origin", "media_id"))


# Each helper acts item by item through the operator action functions of
# operators.services.media (each writes its audit entry), or for all of a user's or a
# room's media through their bulk forms, and keeps the per-object Django log beside.


def quarantine_and_log(
    request: HttpRequest, media: QuerySet[LocalMedia], why: str, *, owner: str = ""
) -> int:
    """Quarantine ``media`` (protected items excepted) and log each item newly
    quarantined; ``owner``: all of this user's or room's media. Returns how many."""
    with transaction.atomic():
        targets = [
            m
            for m in _loaded(media.filter(quarantined_by__isnull=True))
            if not m.safe_from_quarantine
        ]
        if owner.startswith("@"):
            count = media_actions.quarantine_user_media(owner, **actor(request))
        elif owner.startswith("!"):
            count = media_actions.quarantine_room_media(owner, **actor(request))
        else:
            count = sum(
                media_actions.quarantine_media(settings.SERVER_NAME, m.media_id, **actor(request))
                for m in targets
            )
        log_operator_action(request, targets, f"Quarantined ({why}).")
    return count


def release_and_log(request: HttpRequest, media: QuerySet[LocalMedia], why: str) -> int:
    """Release ``media`` from quarantine and log each item released; return how many."""
    with transaction.atomic():
        targets = _loaded(media.filter(quarantined_by__isnull=False))
        count = sum(
            media_actions.unquarantine_media(settings.SERVER_NAME, m.media_id, **actor(request))
            for m in targets
        )
        log_operator_action(request, targets, f"Released from quarantine ({why}).")
    return count


def delete_and_log(request: HttpRequest, media: QuerySet[LocalMedia], why: str) -> int:
    """Delete ``media`` with their files and log each item deleted; return how many."""
    with transaction.atomic():
        targets = _loaded(media)
        for m in targets:
            media_actions.delete_media(settings.SERVER_NAME, m.media_id, **actor(request))
        log_operator_action(request, targets, f"Deleted with its files ({why}).", deletion=True)
    return len(targets)


def protect_and_log(request: HttpRequest, media: QuerySet[LocalMedia], protect: bool) -> int:
    """Keep ``media`` out of every quarantine (or no longer); return how many changed."""
    with transaction.atomic():
        targets = [m for m in _loaded(media) if m.safe_from_quarantine != protect]
        change = media_actions.protect_media if protect else media_actions.unprotect_media
        for m in targets:
            change(m.media_id, **actor(request))
        log_operator_action(
            request, targets, "Protected from quarantine." if protect else "No longer protected."
        )
    return len(targets)


class QuarantinedFilter(admin.SimpleListFilter):
    title = "quarantined"
    parameter_name = "quarantined"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> Any:
        if self.value() == "yes":
            return queryset.filter(quarantined_by__isnull=False)
        if self.value() == "no":
            return queryset.filter(quarantined_by__isnull=True)
        return queryset


class UploadedFilter(admin.SimpleListFilter):
    title = "uploaded"
    parameter_name = "uploaded"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("pending", "Pending (created, not uploaded)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> Any:
        if self.value() == "yes":
            return queryset.filter(uploaded_ts__isnull=False)
        if self.value() == "pending":
            return queryset.filter(uploaded_ts__isnull=True)
        return queryset


class RoomFilter(admin.SimpleListFilter):
    """?room=!id: the media of this server a room's messages point at (offered from a
    room's page; shown in the sidebar while it applies)."""

    title = "room"
    parameter_name = "room"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        room_id = request.GET.get(self.parameter_name)
        return [(room_id, room_id)] if room_id else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> Any:
        if self.value():
            ids = moderation.media_ids_in_room(self.value() or "")
            return queryset.filter(media_id__in=ids)
        return queryset


def storage_summary(media: QuerySet[LocalMedia]) -> str:
    totals = media.aggregate(
        n=Count("pk"),
        size=Sum("size"),
        quarantined=Count("pk", filter=Q(quarantined_by__isnull=False)),
    )
    return (
        f"{totals['n']} item(s), {filesizeformat(totals['size'] or 0)} in all, "
        f"{totals['quarantined']} quarantined."
    )


def largest_uploaders(limit: int = 10) -> list[tuple[str, int, int]]:
    """(user ID, items, bytes) of the users whose uploads take the most room."""
    rows = (
        LocalMedia.objects.exclude(user_id="")
        .values("user_id")
        .annotate(n=Count("pk"), size=Sum("size"))
        .order_by("-size", "user_id")[:limit]
    )
    return [(row["user_id"], row["n"], row["size"] or 0) for row in rows]


class OwnerMediaForm(forms.Form):
    target = forms.CharField(
        label="User ID or room ID",
        max_length=255,
        help_text="@user:server for everything the user uploaded; !room:server for "
        "everything the room's messages point at.",
    )
    action = forms.ChoiceField(
        choices=[("quarantine", "Quarantine"), ("unquarantine", "Release"), ("delete", "Delete")]
    )

    def clean_target(self) -> str:
        target = str(self.cleaned_data["target"]).strip()
        if not target.startswith(("@", "!")):
            raise forms.ValidationError("Give a user ID (@...) or a room ID (!...).")
        return target


def _one(media: LocalMedia) -> QuerySet[LocalMedia]:
    return LocalMedia.objects.filter(pk=media.pk)


MEDIA_ACTIONS = [
    ObjectAction(
        "quarantine",
        "Quarantine…",
        lambda request, m, data: (
            f"Quarantined {quarantine_and_log(request, _one(m), 'its page')} item(s)."
        ),
        help="Nobody can download it any more, not even its uploader.",
        danger=True,
        shown=lambda m: m.quarantined_by is None and not m.safe_from_quarantine,
    ),
    ObjectAction(
        "unquarantine",
        "Release…",
        lambda request, m, data: (
            f"Released {release_and_log(request, _one(m), 'its page')} item(s)."
        ),
        shown=lambda m: m.quarantined_by is not None,
    ),
    ObjectAction(
        "protect",
        "Protect…",
        lambda request, m, data: f"Protected {protect_and_log(request, _one(m), True)} item(s).",
        help="Protected media is never quarantined with a user's or a room's media "
        "(sticker packs, shared media).",
        shown=lambda m: not m.safe_from_quarantine,
    ),
    ObjectAction(
        "unprotect",
        "Unprotect…",
        lambda request, m, data: (
            f"Unprotected {protect_and_log(request, _one(m), False)} item(s)."
        ),
        shown=lambda m: m.safe_from_quarantine,
    ),
    ObjectAction(
        "delete",
        "Delete…",
        lambda request, m, data: (
            f"Deleted {delete_and_log(request, _one(m), 'its page')} item(s) and their files."
        ),
        danger=True,
    ),
]


@admin.register(LocalMedia)
class LocalMediaAdmin(ObjectActionsAdmin):
    list_display = (
        "media_id",
        "uploader",
        "content_type",
        "size",
        "upload_name",
        "uploaded_ts",
        "quarantined_by",
    )
    list_filter = (QuarantinedFilter, UploadedFilter, RoomFilter, "content_type")
    search_fields = ("media_id", "user_id", "upload_name")
    fields = (
        "mxc",
        "user_id",
        "content_type",
        "upload_name",
        "size",
        "sha256",
        "width",
        "height",
        "created_ts",
        "uploaded_ts",
        "authenticated_only",
        "quarantined_by",
        "safe_from_quarantine",
    )
    actions = [
        "quarantine",
        "unquarantine",
        "protect",
        "unprotect",
        "delete_media",
        "quarantine_uploaders_media",
        "delete_uploaders_media",
    ]
    object_actions = MEDIA_ACTIONS
    change_list_template = "admin/media/localmedia/change_list.html"

    @admin.display(description="Uploader", ordering="user_id")
    def uploader(self, obj: LocalMedia) -> str:
        return obj.user_id or "(server: URL preview)"

    @admin.display(description="mxc URI")
    def mxc(self, obj: LocalMedia) -> str:
        return ids.mxc_uri(obj.media_id)

    @admin.action(description="Quarantine selected media (nobody can download it)")
    def quarantine(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = quarantine_and_log(request, queryset, "selected in the list")
        self.message_user(request, f"Quarantined {count} item(s).", messages.SUCCESS)

    @admin.action(description="Release selected media from quarantine")
    def unquarantine(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = release_and_log(request, queryset, "selected in the list")
        self.message_user(request, f"Released {count} item(s).", messages.SUCCESS)

    @admin.action(description="Protect selected media from quarantine")
    def protect(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = protect_and_log(request, queryset, True)
        self.message_user(request, f"Protected {count} item(s).", messages.SUCCESS)

    @admin.action(description="Unprotect selected media")
    def unprotect(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = protect_and_log(request, queryset, False)
        self.message_user(request, f"Unprotected {count} item(s).", messages.SUCCESS)

    @admin.action(description="Delete selected media and their files")
    def delete_media(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = delete_and_log(request, queryset, "selected in the list")
        self.message_user(request, f"Deleted {count} item(s).", messages.SUCCESS)

    def _uploaders(self, queryset: QuerySet[LocalMedia]) -> list[str]:
        return sorted({u for u in queryset.values_list("user_id", flat=True) if u})

    @admin.action(description="Quarantine ALL media of the selected items' uploaders")
    def quarantine_uploaders_media(
        self, request: HttpRequest, queryset: QuerySet[LocalMedia]
    ) -> None:
        uploaders = self._uploaders(queryset)
        count = sum(
            quarantine_and_log(
                request,
                moderation.media_of_user(uploader),
                f"all media of {uploader}",
                owner=uploader,
            )
            for uploader in uploaders
        )
        self.message_user(
            request,
            f"Quarantined {count} item(s) of {', '.join(uploaders) or 'nobody'}.",
            messages.SUCCESS,
        )

    @admin.action(description="Delete ALL media of the selected items' uploaders")
    def delete_uploaders_media(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        uploaders = self._uploaders(queryset)
        count = delete_and_log(
            request,
            LocalMedia.objects.filter(user_id__in=uploaders),
            f"all media of {', '.join(uploaders)}",
        )
        self.message_user(
            request,
            f"Deleted {count} item(s) of {', '.join(uploaders) or 'nobody'}.",
            messages.SUCCESS,
        )

    # --- All media of a user or a room ------------------------------------------------

    def extra_urls(self) -> list[URLPattern]:
        owner = path(
            "owner/",
            self.admin_site.admin_view(self.owner_media_view),
            name="media_localmedia_owner",
        )
        return [owner]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(
            request,
            {
                "room_media_link": format_html(
                    '<a href="{}">Quarantine or delete all media of a user or a room…</a>',
                    reverse("admin:media_localmedia_owner"),
                ),
                "storage_total": storage_summary(LocalMedia.objects.all()),
                "largest_uploaders": [
                    (
                        user_id,
                        reverse("admin:media_localmedia_changelist") + f"?user_id={user_id}",
                        n,
                        filesizeformat(size),
                    )
                    for user_id, n, size in largest_uploaders()
                ],
                **(extra_context or {}),
            },
        )
        context = getattr(response, "context_data", None)
        if context is not None and "cl" in context:
            # The totals of what the list shows (after its filters and search).
            context["storage_shown"] = storage_summary(context["cl"].queryset)
        return response

    def owner_media_view(self, request: HttpRequest) -> HttpResponse:
        """Quarantine, release or delete everything a user uploaded, or every local media
        a room's messages refer to."""
        if not self.can_act(request):
            return HttpResponse(status=403)
        form = OwnerMediaForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            target = form.cleaned_data["target"]
            action = form.cleaned_data["action"]
            media = (
                moderation.media_of_user(target)
                if target.startswith("@")
                else moderation.media_in_room(target)
            )
            why = f"all media of {target}"
            if action == "quarantine":
                count = quarantine_and_log(request, media, why, owner=target)
            elif action == "unquarantine":
                count = release_and_log(request, media, why)
            else:
                count = delete_and_log(request, media, why)
            self.message_user(
                request, f"{action.capitalize()}: {count} item(s) of {target}.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:media_localmedia_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "All media of a user or a room",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/media/owner_media.html", context)


class RemoteCacheStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("cached", "Cached"),
            ("quarantined", "Quarantined"),
            ("failed", "Fetch failed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RemoteMedia]) -> Any:
        if self.value() == "cached":
            return queryset.filter(fetched_ts__isnull=False)
        if self.value() == "quarantined":
            return queryset.filter(quarantined_by__isnull=False)
        if self.value() == "failed":
            return queryset.filter(failed_ts__isnull=False)
        return queryset


@admin.register(RemoteMedia)
class RemoteMediaAdmin(ReadOnlyAdmin):
    """Other servers' media cached here: what, from where, how large."""

    list_display = (
        "media_id",
        "origin",
        "content_type",
        "size",
        "upload_name",
        "fetched_ts",
        "state",
        "quarantined_by",
    )
    list_filter = (RemoteCacheStateFilter, "content_type")
    search_fields = ("origin", "media_id", "upload_name")
    fields = (
        "mxc",
        "origin",
        "content_type",
        "upload_name",
        "size",
        "sha256",
        "width",
        "height",
        "created_ts",
        "fetched_ts",
        "failed_ts",
        "failure",
        "authenticated_only",
        "quarantined_by",
    )
    readonly_fields = fields
    ordering = ("-created_ts",)
    actions = ["quarantine", "unquarantine", "purge"]

    @admin.display(description="mxc URI")
    def mxc(self, obj: RemoteMedia) -> str:
        return str(obj)

    @admin.display(description="State")
    def state(self, obj: RemoteMedia) -> str:
        if obj.is_cached:
            return "cached"
        if obj.failed_ts is not None:
            return f"fetch failed ({obj.failure})"
        if obj.is_quarantined:
            return "purged"
        return "fetching"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        count, size = selectors.remote_cache_size()
        summary = f"{count} item(s) cached, {filesizeformat(size)} in all (thumbnails included)."
        extra = {"cache_summary": summary, **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.action(description="Quarantine selected media (nobody can download it)")
    def quarantine(self, request: HttpRequest, queryset: QuerySet[RemoteMedia]) -> None:
        with transaction.atomic():
            targets = _loaded_remote(queryset.filter(quarantined_by__isnull=True))
            count = sum(
                media_actions.quarantine_media(m.origin, m.media_id, **actor(request))
                for m in targets
            )
            log_operator_action(request, targets, "Quarantined (selected in the list).")
        self.message_user(request, f"Quarantined {count} item(s).", messages.SUCCESS)

    @admin.action(description="Release selected media from quarantine")
    def unquarantine(self, request: HttpRequest, queryset: QuerySet[RemoteMedia]) -> None:
        with transaction.atomic():
            targets = _loaded_remote(queryset.filter(quarantined_by__isnull=False))
            count = sum(
                media_actions.unquarantine_media(m.origin, m.media_id, **actor(request))
                for m in targets
            )
            log_operator_action(request, targets, "Released from quarantine.")
        self.message_user(request, f"Released {count} item(s).", messages.SUCCESS)

    @admin.action(description="Purge selected from the cache (delete the cached files)")
    def purge(self, request: HttpRequest, queryset: QuerySet[RemoteMedia]) -> None:
        with transaction.atomic():
            targets = _loaded_remote(queryset)
            count = sum(
                remote_cache.purge_remote_media(m.origin, m.media_id, **actor(request))
                for m in targets
            )
            log_operator_action(
                request,
                targets,
                "Purged from the remote media cache (quarantined items stay refused).",
                deletion=True,
            )
        self.message_user(
            request,
            f"Purged {count} item(s); quarantined ones stay refused.",
            messages.SUCCESS,
        )

"""The operator's view of the media repository: what is stored, by whom, and moderation.

Quarantined media is served to nobody (not even its uploader); deleting removes the
rows and the files. Both act on chosen items, on everything their uploaders stored, or
(from "Media of a room") on everything a room's messages point at.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from media import ids
from media.models import LocalMedia
from media.services import moderation


def _admin_name(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


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


class RoomMediaForm(forms.Form):
    room_id = forms.CharField(label="Room ID", max_length=255)
    action = forms.ChoiceField(
        choices=[("quarantine", "Quarantine"), ("unquarantine", "Release"), ("delete", "Delete")]
    )


@admin.register(LocalMedia)
class LocalMediaAdmin(admin.ModelAdmin):
    list_display = (
        "media_id",
        "uploader",
        "content_type",
        "size",
        "upload_name",
        "uploaded_ts",
        "quarantined_by",
    )
    list_filter = (QuarantinedFilter, UploadedFilter, "content_type")
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
    )
    readonly_fields = fields
    actions = [
        "quarantine",
        "unquarantine",
        "delete_media",
        "quarantine_uploaders_media",
        "delete_uploaders_media",
    ]

    @admin.display(description="Uploader", ordering="user_id")
    def uploader(self, obj: LocalMedia) -> str:
        return obj.user_id or "(server: URL preview)"

    @admin.display(description="mxc URI")
    def mxc(self, obj: LocalMedia) -> str:
        return ids.mxc_uri(obj.media_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Django's own bulk delete would leave the files behind.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: LocalMedia) -> None:
        moderation.do_delete(LocalMedia.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        moderation.do_delete(queryset)

    @admin.action(description="Quarantine selected media (nobody can download it)")
    def quarantine(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = moderation.do_quarantine(queryset, _admin_name(request))
        self.message_user(request, f"Quarantined {count} item(s).", messages.SUCCESS)

    @admin.action(description="Release selected media from quarantine")
    def unquarantine(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = moderation.do_unquarantine(queryset)
        self.message_user(request, f"Released {count} item(s).", messages.SUCCESS)

    @admin.action(description="Delete selected media and their files")
    def delete_media(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        count = moderation.do_delete(queryset)
        self.message_user(request, f"Deleted {count} item(s).", messages.SUCCESS)

    def _uploaders(self, queryset: QuerySet[LocalMedia]) -> list[str]:
        return sorted({u for u in queryset.values_list("user_id", flat=True) if u})

    @admin.action(description="Quarantine ALL media of the selected items' uploaders")
    def quarantine_uploaders_media(
        self, request: HttpRequest, queryset: QuerySet[LocalMedia]
    ) -> None:
        uploaders = self._uploaders(queryset)
        count = moderation.do_quarantine(
            LocalMedia.objects.filter(user_id__in=uploaders), _admin_name(request)
        )
        self.message_user(
            request,
            f"Quarantined {count} item(s) of {', '.join(uploaders) or 'nobody'}.",
            messages.SUCCESS,
        )

    @admin.action(description="Delete ALL media of the selected items' uploaders")
    def delete_uploaders_media(self, request: HttpRequest, queryset: QuerySet[LocalMedia]) -> None:
        uploaders = self._uploaders(queryset)
        count = moderation.do_delete(LocalMedia.objects.filter(user_id__in=uploaders))
        self.message_user(
            request,
            f"Deleted {count} item(s) of {', '.join(uploaders) or 'nobody'}.",
            messages.SUCCESS,
        )

    # --- Media of a room --------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        room = path(
            "room/",
            self.admin_site.admin_view(self.room_media_view),
            name="media_localmedia_room",
        )
        return [room, *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {
            "room_media_link": format_html(
                '<a href="{}">Quarantine or delete all media of a room…</a>',
                reverse("admin:media_localmedia_room"),
            ),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    def room_media_view(self, request: HttpRequest) -> HttpResponse:
        """Quarantine, release or delete every local media a room's messages refer to."""
        if not self.has_change_permission(request) or not self.has_delete_permission(request):
            return HttpResponse(status=403)
        form = RoomMediaForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            room_id = form.cleaned_data["room_id"]
            action = form.cleaned_data["action"]
            media = moderation.media_in_room(room_id)
            if action == "quarantine":
                count = moderation.do_quarantine(media, _admin_name(request))
            elif action == "unquarantine":
                count = moderation.do_unquarantine(media)
            else:
                count = moderation.do_delete(media)
            self.message_user(
                request, f"{action.capitalize()}: {count} item(s) of {room_id}.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:media_localmedia_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Media of a room",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/media/room_media.html", context)

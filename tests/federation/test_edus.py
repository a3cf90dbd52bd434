"""The inbound EDU registry (federation.edus): each EDU of a transaction goes to its
type's handler; malformed EDUs, unknown types and failing handlers are skipped without
stopping the others or undoing their work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from federation import edus
from federation.models import Destination


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> dict[str, edus.EduHandler]:
    registry: dict[str, edus.EduHandler] = {}
    monkeypatch.setattr(edus, "_handlers", registry)
    return registry


def test_each_edu_goes_to_its_types_handler_in_order(
    db: None, handlers: dict[str, edus.EduHandler]
) -> None:
    seen: list[tuple[str, str, Mapping[str, Any]]] = []
    edus.register_edu_handler("m.a", lambda origin, c: seen.append(("a", origin, c)))
    edus.register_edu_handler("m.b", lambda origin, c: seen.append(("b", origin, c)))

    handled = edus.receive_edus(
        "carol.example",
        [
            {"edu_type": "m.b", "content": {"n": 1}},
            "not an object",
            {"edu_type": "m.a"},
            {"edu_type": "m.a", "content": []},
            {"edu_type": "m.unknown", "content": {}},
            {"edu_type": "m.a", "content": {"n": 2}},
        ],
    )

    assert handled == 2
    assert seen == [("b", "carol.example", {"n": 1}), ("a", "carol.example", {"n": 2})]


def test_a_failing_handler_leaves_nothing_behind_and_stops_nothing(
    db: None, handlers: dict[str, edus.EduHandler]
) -> None:
    def failing(origin: str, content: Mapping[str, Any]) -> None:
        Destination.objects.create(server_name="half.done")
        raise ValueError("broken")

    def working(origin: str, content: Mapping[str, Any]) -> None:
        Destination.objects.create(server_name="done")

    edus.register_edu_handler("m.failing", failing)
    edus.register_edu_handler("m.working", working)

    handled = edus.receive_edus(
        "carol.example",
        [{"edu_type": "m.failing", "content": {}}, {"edu_type": "m.working", "content": {}}],
    )

    assert handled == 1
    assert list(Destination.objects.values_list("server_name", flat=True)) == ["done"]


def test_a_type_has_one_handler(handlers: dict[str, edus.EduHandler]) -> None:
    def handler(origin: str, content: Mapping[str, Any]) -> None:
        pass

    edus.register_edu_handler("m.a", handler)
    edus.register_edu_handler("m.a", handler)
    with pytest.raises(ValueError, match=r"m\.a EDUs"):
        edus.register_edu_handler("m.a", lambda origin, content: None)


def test_rooms_handle_typing_and_receipts() -> None:
    from rooms.federation import edus as room_edus

    assert edus.handler_for("m.typing") is room_edus.receive_typing
    assert edus.handler_for("m.receipt") is room_edus.receive_receipts

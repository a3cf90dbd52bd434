"""The room graph check as a test-suite guard: after a test that used the database, every
room it left must pass ``rooms.graph_check.check_room``.

To guard a module or the whole suite, use the fixture, e.g. in a conftest.py::

    from tests.graph_check import room_graphs_sound  # noqa: F401

    @pytest.fixture(autouse=True)
    def _graphs(room_graphs_sound: None) -> None: ...

or call ``assert_room_graphs_sound()`` at the end of a test. tests/conftest.py guards the
whole suite so; a test that damages a graph on purpose (or writes rows by hand) is marked
``@pytest.mark.graph_unchecked``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rooms.graph_check import check_room
from rooms.models import Room


def room_graph_problems() -> dict[str, list[str]]:
    """The problems of every room in the database, by room ID (sound rooms left out)."""
    found = {}
    for room in Room.objects.order_by("pk"):
        problems = check_room(room)
        if problems:
            found[room.room_id] = problems
    return found


def assert_room_graphs_sound() -> None:
    problems = room_graph_problems()
    assert not problems, "room graphs with problems:\n" + "\n".join(
        f"{room_id}:\n  " + "\n  ".join(lines) for room_id, lines in problems.items()
    )


@pytest.fixture
def room_graphs_sound(request: pytest.FixtureRequest) -> Iterator[None]:
    """Checks every room after the test, if the test had the database (it sets the database
    up first, so that its check runs before the test's transaction is rolled back)."""
    yield from guard(request)


def guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """The fixture's body, for autouse fixtures elsewhere (tests/conftest.py)."""
    database = next(
        (name for name in ("transactional_db", "db") if name in request.fixturenames), None
    )
    marker = request.node.get_closest_marker("django_db")
    if database is None and marker is not None:
        database = "transactional_db" if marker.kwargs.get("transaction") else "db"
    if database is None or request.node.get_closest_marker("graph_unchecked") is not None:
        yield
        return
    request.getfixturevalue(database)
    yield
    assert_room_graphs_sound()

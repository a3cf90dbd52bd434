"""The embedded default's Celery broker: kombu's filesystem transport, made atomic.

kombu's own ``filesystem://`` transport creates a message file under its final name and
then writes into it. A worker listing the folder in between takes the empty file, fails
to parse it (JSONDecodeError, celery/kombu#1551), and the embedded worker, and with it
the server, stops; the message being written is lost with it. Here a message is written
to a hidden temporary name in the same folder, flushed to disk, and renamed to its final
name, which is atomic: a reader sees a whole message or none. The reader skips the
temporary names because they do not end in ``.<queue>.msg``.

Used through the ``trellisfs://`` broker URL (config/settings.py), registered with kombu
when this module is imported (config/celery.py imports it).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "trellisfs"


class Channel(filesystem.Channel):  # type: ignore[misc]
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue``: written aside, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"

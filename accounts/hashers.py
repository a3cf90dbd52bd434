"""Password hashing: Argon2id with parameters sized for a homeserver.

Django's default Argon2 parameters take 100 MiB of memory per hash; ten logins at once
then need a gigabyte. These are OWASP's recommended minimum for Argon2id (19 MiB,
2 iterations, 1 lane), which keeps a login near 30-60 ms of CPU. Hashes made with
other parameters still verify, and are upgraded on the next successful login.

At most two hashes run at once per process: each needs its 19 MiB while it runs, and
hashing is CPU work that does not go faster ten at a time. (That the memory is given
back afterwards is config/memory.py's doing.)
"""

from __future__ import annotations

import threading

from django.contrib.auth.hashers import Argon2PasswordHasher

MAX_CONCURRENT_HASHES = 2
_hashing = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)


class TrellisArgon2PasswordHasher(Argon2PasswordHasher):
    # Same algorithm name as Django's, so existing argon2 hashes keep verifying.
    time_cost = 2
    memory_cost = 19 * 1024
    parallelism = 1

    def encode(self, password: str, salt: str) -> str:
        with _hashing:
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with _hashing:
            return super().verify(password, encoded)

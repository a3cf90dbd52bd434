"""Password hashing: Argon2id with parameters sized for a homeserver.

Django's default Argon2 parameters take 100 MiB of memory per hash; ten logins at once
then need a gigabyte. These are OWASP's recommended minimum for Argon2id (19 MiB,
2 iterations, 1 lane), which keeps a login near 30-60 ms of CPU. Hashes made with
other parameters still verify, and are upgraded on the next successful login.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class TrellisArgon2PasswordHasher(Argon2PasswordHasher):
    # Same algorithm name as Django's, so existing argon2 hashes keep verifying.
    time_cost = 2
    memory_cost = 19 * 1024
    parallelism = 1

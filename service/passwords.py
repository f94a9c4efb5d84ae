"""Password hashing: bcrypt over an HMAC-SHA-384 pre-hash.

bcrypt reads at most 72 bytes (bcrypt 5 raises beyond that), so the password is first
condensed with HMAC-SHA-384 and base64 (64 ASCII bytes): every character of a password
of up to 256 characters is significant and nothing is truncated.

Hashing runs in threads of its own (bcrypt releases the GIL), so the event loop keeps
serving other requests. Those threads are as many as there are cores and, on Linux, run
at a lower CPU priority: a burst of logins then queues for the cores instead of crowding
out the event loop, and reads stay fast while someone hashes (the benchmark's S4).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import sys
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import bcrypt

from service.text import is_blank

_PREHASH_KEY = b"achievement-journal/password/v1"
MIN_LENGTH = 8
MAX_LENGTH = 256

# The most common passwords and words of this service; a password whose core (without
# trailing digits and symbols) is one of them is refused.
_COMMON = """
password passw0rd p@ssword p@ssw0rd qwerty qwertyuiop asdfgh asdfghjkl zxcvbnm
letmein welcome admin administrator iloveyou monkey dragon football baseball
sunshine princess master shadow superman batman trustno1 starwars whatever
freedom hello login secret abc abcdef abcdefgh abcd1234 qazwsx 1q2w3e4r 1qaz2wsx
changeme default guest root test student teacher university college school
achievement achievements journal achievementjournal curator
""".split()
_CORE = re.compile(r"[0-9\s!-/:-@\[-`{-~]+$")


def prehash(password: str) -> bytes:
    normalised = unicodedata.normalize("NFC", password).encode("utf-8")
    digest = hmac.new(_PREHASH_KEY, normalised, hashlib.sha384).digest()
    return base64.b64encode(digest)


@dataclass(frozen=True)
class PasswordProblem:
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def password_problem(password: str, context_words: tuple[str, ...] = ()) -> PasswordProblem | None:
    """Why a new password is refused, or None when it is acceptable. Lengths are counted
    after NFC normalisation (what is hashed), so combining sequences count once."""
    password = unicodedata.normalize("NFC", password)
    if len(password) < MIN_LENGTH:
        return PasswordProblem("too_short", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        return PasswordProblem("too_long", f"must be at most {MAX_LENGTH} characters")
    if is_blank(password):
        return PasswordProblem("blank", "must contain visible characters")
    lowered = password.lower()
    core = _CORE.sub("", lowered).strip()
    banned = set(_COMMON) | {w.lower() for w in context_words if len(w) >= 3}
    if lowered in banned or not core or core in banned:
        return PasswordProblem("too_common", "is too common or too easy to guess")
    return None


def needs_rehash(password_hash: str, rounds: int) -> bool:
    """True for a bcrypt hash of lower cost than configured (upgraded at the next login)."""
    try:
        return int(password_hash.split("$")[2]) < rounds
    except (IndexError, ValueError):
        return False


def hash_password_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password_sync(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(prehash(password), password_hash.encode("ascii"))
    except (ValueError, TypeError):
        return False


@lru_cache(maxsize=4)
def dummy_hash(rounds: int) -> str:
    """A hash of the same cost, verified for unknown emails so timing does not tell."""
    return hash_password_sync("not-a-real-password-for-timing", rounds)


HASHING_NICENESS = 2  # added to the hashing threads' nice value (Linux); see the README (S4)
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _lower_priority() -> None:
    # On Linux a thread is a task of its own, so this renices only the calling thread.
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + HASHING_NICENESS)
        except OSError:
            pass


def hashing_executor() -> ThreadPoolExecutor:
    """This process's hashing threads, started on first use."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bcrypt",
                                           initializer=_lower_priority)
        return _executor


async def hash_password(password: str, rounds: int) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(hashing_executor(), hash_password_sync, password, rounds)


async def verify_password(password: str, password_hash: str | None, rounds: int) -> bool:
    """Always costs one bcrypt verification, whether or not there is a hash."""

    def check() -> bool:
        # The dummy hash is made on first use: in a hashing thread too, never on the loop.
        return verify_password_sync(password, password_hash or dummy_hash(rounds))

    ok = await asyncio.get_running_loop().run_in_executor(hashing_executor(), check)
    return ok and password_hash is not None

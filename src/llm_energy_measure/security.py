"""Safe experiment ids, path containment and secret redaction.

Three small guards used wherever user input reaches the file system or the logs:

* experiment ids are validated, never silently rewritten (``sanitize_experiment_id``); a fresh
  safe id is built from a free-form name with ``make_experiment_id``;
* a path is inside a base directory only if its *resolved real* path is (``is_safe_path``);
* secrets (keys that look secret, values of ``constants.SECRET_ENV_VARS``, bearer/HF tokens)
  become ``"***"`` before anything is written to results or logs (``redact_secrets``,
  ``redact_text``).
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import secrets
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm_energy_measure.constants import SECRET_ENV_VARS
from llm_energy_measure.exceptions import ConfigurationError

REDACTED = "***"

EXPERIMENT_ID_MAX_LEN = 128
_ID_RULE = (
    "use 1-128 characters from [A-Za-z0-9._-], not starting with '.' or '-', and without '..'"
)
_ID_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_SLUG_BAD = re.compile(r"[^a-z0-9._-]+")
#: Room left for "-<timestamp>-<suffix>" ("-20261127T051500Z-a1b2c3" is 24 characters).
_SLUG_MAX_LEN = EXPERIMENT_ID_MAX_LEN - 24

#: Environment values shorter than this are not searched for in text: redacting every "1"
#: because a variable holds "1" would destroy logs, and real tokens are far longer.
MIN_SECRET_VALUE_LEN = 4

#: Words that make a key secret wherever they appear in it ("secret_key", "password_hash").
_SECRET_KEY_WORDS = frozenset({"password", "passwd", "secret", "secrets", "authorization"})
#: Words that make a key secret when they end it ("hf_token", "apikey"; not "token_budget").
_SECRET_LAST_WORDS = frozenset({"token", "apikey", "credential", "credentials"})
#: Tokenizer special tokens are vocabulary, not credentials ("pad_token": "<pad>").
_SPECIAL_TOKEN_KINDS = frozenset({"pad", "eos", "bos", "unk", "sep", "cls", "mask"})
_KEY_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")
_TEXT_PATTERNS = (
    # "Bearer <8+ chars>" anywhere; "Basic <b64>" only after an Authorization key (both are
    # also English words).
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(\bauthorization[\"']?\s*[=:]\s*[\"']?basic\s+)[A-Za-z0-9._~+/=-]+"),
    # Hugging Face user access tokens.
    re.compile(r"()\bhf_[A-Za-z0-9]{20,}"),
    # key=value / key: value / "key": "value" where the key ends in a secret word.
    re.compile(
        r"(?i)(\b[A-Za-z0-9_-]*?"
        r"(?:(?<!pad_)(?<!eos_)(?<!bos_)(?<!unk_)token|password|passwd|secret|api[_-]?key"
        r"|authorization)"
        r"[\"']?\s*[=:]\s*[\"']?)"
        # ... unless the value is a number, possibly with a short unit ("12ms", "1.5e3").
        r"(?![+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z%/]{0,4}(?![A-Za-z0-9]))"
        r"(?!(?:bearer|basic)\s)"  # "Authorization: Bearer <tok>": handled by the first one.
        r"[^\s\"',;&]+"
    ),
)


def sanitize_experiment_id(raw: str) -> str:
    """Return ``raw`` unchanged if it is a safe experiment id, else raise ConfigurationError.

    A safe id has 1..128 characters from ``[A-Za-z0-9._-]``, does not start with ``.`` or
    ``-`` and contains no ``..``; such an id can never name a hidden file, a CLI flag or a
    parent directory.
    """
    if (
        not isinstance(raw, str)
        or not 1 <= len(raw) <= EXPERIMENT_ID_MAX_LEN
        or _ID_CHARS.fullmatch(raw) is None
        or raw[0] in ".-"
        or ".." in raw
    ):
        raise ConfigurationError(f"invalid experiment id {raw!r}: {_ID_RULE}")
    return raw


def _slugify(name: str) -> str:
    slug = _SLUG_BAD.sub("-", name.strip().lower())
    slug = re.sub(r"\.{2,}", ".", slug)
    slug = re.sub(r"-{2,}", "-", slug)
    slug = slug[:_SLUG_MAX_LEN].strip(".-_")
    return slug or "experiment"


def make_experiment_id(config_name: str, now: datetime | None = None) -> str:
    """Build a fresh safe id ``<slug>-<UTC timestamp>-<6 hex>`` from a free-form name.

    ``now`` defaults to the current time; a naive datetime is taken to be UTC already.
    Example: ``make_experiment_id("Quick start!")`` -> ``"quick-start-20261127T051500Z-a1b2c3"``.
    """
    moment = now if now is not None else datetime.now(timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    return sanitize_experiment_id(f"{_slugify(config_name)}-{stamp}-{secrets.token_hex(3)}")


def _real_path(path: Path) -> Path:
    """Absolute path with every symlink in its existing part resolved (target may not exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def is_safe_path(base: Path, target: Path) -> bool:
    """True iff ``target``'s real path is ``base``'s real path or lies inside it.

    Symlinks are followed (also a dangling one, and those in the existing parents of a target
    that does not exist yet) and ``..`` is applied after resolution; containment is tested
    component by component, so ``/a/bc`` is not inside ``/a/b``. Relative paths are taken
    relative to the current working directory, as everywhere else in Python.
    """
    try:
        real_base = _real_path(base)
        real_target = _real_path(target)
    except (OSError, ValueError, RuntimeError):
        return False
    return real_target == real_base or real_target.is_relative_to(real_base)


def ensure_safe_path(base: Path, target: Path) -> Path:
    """Return ``target``'s resolved real path, or raise ConfigurationError if it leaves ``base``."""
    if not is_safe_path(base, target):
        raise ConfigurationError(
            f"path {os.fspath(target)!r} resolves outside {os.fspath(base)!r}; "
            "use a path inside that directory (check for '..' or symlinks)"
        )
    return _real_path(target)


#: Patterns of credentials recognisable on their own, without knowing the environment.
_CREDENTIAL_PATTERNS = (_TEXT_PATTERNS[0], _TEXT_PATTERNS[2])
#: Bidirectional-text controls: they reorder what a terminal shows (a spoofing vector).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def looks_like_credential(text: str) -> bool:
    """True when ``text`` holds a Hugging Face token (``hf_`` + 20 or more letters/digits) or
    a ``Bearer <token>``: never a valid setting (pure: the environment is not consulted)."""
    return any(pattern.search(text) for pattern in _CREDENTIAL_PATTERNS)


def control_character(text: str) -> str | None:
    """The first control character of ``text`` (C0/C1 controls such as ESC, newline or tab,
    and bidirectional-text controls), or None."""
    for char in text:
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            return char
    return None


def escape_controls(text: str) -> str:
    """``text`` with each control character (see ``control_character``) written as a Python
    escape (``\\x1b``, ``\\u202e``), so that printing it cannot drive the terminal."""
    if control_character(text) is None:
        return text
    out = []
    for char in text:
        if unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _secret_env_values() -> list[str]:
    values = {os.environ.get(name, "") for name in SECRET_ENV_VARS}
    # Longest first so that a secret containing another is replaced whole.
    return sorted((v for v in values if len(v) >= MIN_SECRET_VALUE_LEN), key=len, reverse=True)


def redact_text(text: str) -> str:
    """Replace secrets in free text (a log line, an error message) by ``"***"``.

    Covers the current values of ``constants.SECRET_ENV_VARS`` (values shorter than
    ``MIN_SECRET_VALUE_LEN`` characters are not searched for), ``Bearer <token>``, Hugging Face
    ``hf_...`` tokens, and ``key=value`` / ``key: value`` pairs whose key ends in a secret word
    (``token``, ``password``, ``secret``, ``api_key``, ``authorization``) unless the value is a
    plain number (so ``output_token: 5`` stays readable).
    """
    for value in _secret_env_values():
        text = text.replace(value, REDACTED)
    for pattern in _TEXT_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def is_secret_key(key: str) -> bool:
    """True if a mapping key names a secret (``hf_token``, ``apiKey``, ``Authorization``...).

    The key is split into words (``_``, ``-``, ``.``, camelCase). It is secret when a word is
    ``password``/``secret``/``authorization``, when it contains ``api`` followed by ``key``, or
    when its last word is ``token``/``apikey``/``credentials`` (``hf_token``), except for
    tokenizer special tokens (``pad_token``, ``eos_token``...). ``token_budget`` and plural
    ``max_new_tokens`` are not secret, nor a key whose last word is ``env``
    (``api_key_env``): it holds the *name* of the environment variable with the secret.
    """
    words = [w.lower() for w in _KEY_WORD_SPLIT.split(key) if w]
    if not words:
        return False
    if any(w in _SECRET_KEY_WORDS for w in words):
        return True
    if words[-1] == "env":
        return False
    if any(a == "api" and b == "key" for a, b in itertools.pairwise(words)):
        return True
    if words[-1] in _SECRET_LAST_WORDS:
        return not (words[-1] == "token" and len(words) > 1 and words[-2] in _SPECIAL_TOKEN_KINDS)
    return False


def _redact_value_of_secret_key(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        # A number stored as text under e.g. "flops_per_output_token" is not a secret.
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return value
        return REDACTED
    return redact_secrets(value)


def first_secret_key(data: Any, key: str = "") -> str | None:
    """The dotted key of the first value in ``data`` (nested dicts/lists) that
    ``redact_secrets`` would change, or None: what would leak if ``data`` were stored."""
    if isinstance(data, dict):
        for name, value in data.items():
            child = f"{key}.{name}" if key else str(name)
            if isinstance(name, str) and redact_text(name) != name:
                return child
            found = first_secret_key(value, child)
            if found is not None:
                return found
        return None
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = first_secret_key(value, f"{key}[{index}]")
            if found is not None:
                return found
        return None
    leaf = key.rsplit(".", 1)[-1]
    if is_secret_key(leaf) and isinstance(data, (str, bytes)):
        return key if _redact_value_of_secret_key(data) != data else None
    if isinstance(data, str) and redact_text(data) != data:
        return key
    return None


def redact_secrets(obj: Any) -> Any:
    """Deep copy of ``obj`` (dict/list/tuple/str nested) with secrets replaced by ``"***"``.

    String and bytes values under secret-looking keys (see ``is_secret_key``) are replaced
    whole; numbers, booleans and ``None`` under such keys are kept (``flops_per_output_token``
    is a count, not a credential) and containers are searched recursively. Every other string,
    keys included, goes through ``redact_text``. Other objects are deep-copied unchanged.
    """
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and is_secret_key(key):
                out[redact_text(key)] = _redact_value_of_secret_key(value)
            else:
                out[redact_text(key) if isinstance(key, str) else key] = redact_secrets(value)
        return out
    if isinstance(obj, list):
        return [redact_secrets(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_secrets(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return copy.deepcopy(obj)

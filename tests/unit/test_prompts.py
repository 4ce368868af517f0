"""Prompt sources: built-in set, text files, JSONL column detection, Hugging Face datasets."""

from __future__ import annotations

import json
import re
import sys
import types
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from llm_energy_measure.config.models import PromptsConfig
from llm_energy_measure.core.prompt_sources import read_builtin_records
from llm_energy_measure.core.prompts import load_prompts
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError

# ---------------------------------------------------------------- built-in set


def test_builtin_set_size_ids_and_spread() -> None:
    records = read_builtin_records()
    assert len(records) >= 300
    assert len({r.id for r in records}) == len(records)
    assert all(r.text == r.text.strip() and r.text for r in records)
    words = [len(r.text.split()) for r in records]
    assert sum(w > 300 for w in words) >= 20
    assert sum(w < 20 for w in words) >= 50
    categories = {r.category for r in records}
    assert {"question", "instruction", "summarise", "code", "reasoning", "translation",
            "chat"} <= categories


def test_builtin_prefix_mixes_lengths() -> None:
    # The default workload (first 16) must span short and long prompts.
    words = [len(r.text.split()) for r in read_builtin_records()[:16]]
    assert min(words) < 10
    assert max(words) > 250


def test_prompts_md_category_table_matches_data() -> None:
    doc = resources.files("llm_energy_measure").joinpath("data").joinpath("PROMPTS.md")
    text = doc.read_text("utf-8")
    # Rows: | category | count | words p50 | words min-max | ...
    table = dict(re.findall(r"^\| (\w+) \| (\d+) \| \d+ \| \d+-\d+ \|", text, re.MULTILINE))
    records = read_builtin_records()
    assert {k: int(v) for k, v in table.items()} == dict(Counter(r.category for r in records))
    assert f"| **all** | {len(records)} |" in text


def test_load_builtin_takes_prefix_in_file_order() -> None:
    texts = [r.text for r in read_builtin_records()]
    prompts = load_prompts(PromptsConfig(num_prompts=5), seed=0)
    assert [p.request_id for p in prompts] == [0, 1, 2, 3, 4]
    assert [p.text for p in prompts] == texts[:5]
    assert all(p.target_output_tokens is None for p in prompts)


def test_load_builtin_shuffle_is_seeded_sample() -> None:
    config = PromptsConfig(num_prompts=20, shuffle=True)
    a = load_prompts(config, seed=1)
    b = load_prompts(config, seed=1)
    c = load_prompts(config, seed=2)
    assert a == b
    assert [p.text for p in a] != [p.text for p in c]
    unshuffled = load_prompts(PromptsConfig(num_prompts=20), seed=1)
    assert [p.text for p in a] != [p.text for p in unshuffled]
    assert [p.request_id for p in a] == list(range(20))


def test_builtin_too_many_names_count_and_fix() -> None:
    n = len(read_builtin_records())
    with pytest.raises(ConfigurationError) as err:
        load_prompts(PromptsConfig(num_prompts=n + 1), seed=0)
    message = str(err.value)
    assert f"prompts.num_prompts is {n + 1}" in message
    assert f"holds {n} prompt(s)" in message
    assert "synthetic" in message


# ---------------------------------------------------------------- text file


def test_file_one_prompt_per_line_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("first prompt\n\n   \n  second prompt  \r\nthird\n", encoding="utf-8")
    prompts = load_prompts(PromptsConfig(source="file", path=path, num_prompts=3), seed=0)
    assert [p.text for p in prompts] == ["first prompt", "second prompt", "third"]


def test_file_missing_and_empty_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigurationError, match=r"prompts.path '.*nope.txt' does not exist"):
        load_prompts(PromptsConfig(source="file", path=missing), seed=0)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"'.*empty.txt' holds no prompts"):
        load_prompts(PromptsConfig(source="file", path=empty), seed=0)


def test_file_fewer_lines_than_asked(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"holds 2 prompt\(s\): lower prompts.num_prompts"):
        load_prompts(PromptsConfig(source="file", path=path, num_prompts=3), seed=0)


# ---------------------------------------------------------------- JSONL


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def jsonl_texts(path: Path, n: int, column: str | None = None) -> list[str]:
    config = PromptsConfig(source="jsonl", path=path, num_prompts=n, column=column)
    return [p.text for p in load_prompts(config, seed=0)]


def test_jsonl_detection_order(tmp_path: Path) -> None:
    # "text" comes before "question" and "input" in the candidate order.
    path = write_jsonl(tmp_path / "a.jsonl", [
        {"input": "i1", "question": "q1", "text": "t1", "id": 1},
        {"input": "i2", "question": "q2", "text": "t2", "id": 2},
    ])
    assert jsonl_texts(path, 2) == ["t1", "t2"]
    path = write_jsonl(tmp_path / "b.jsonl", [{"input": "i1", "question": "q1"}])
    assert jsonl_texts(path, 1) == ["q1"]


def test_jsonl_explicit_column_and_missing_column_lists_seen(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"body": "b1", "title": "x"}])
    assert jsonl_texts(path, 1, column="body") == ["b1"]
    with pytest.raises(ConfigurationError) as err:
        jsonl_texts(path, 1, column="prompt_text")
    assert "prompts.column 'prompt_text'" in str(err.value)
    assert "columns seen: body, title" in str(err.value)
    with pytest.raises(ConfigurationError, match=r"Set prompts\.column"):
        jsonl_texts(path, 1)  # nothing detectable


def test_jsonl_chat_messages_join_user_contents(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "how are you?"}]},
    ]}])
    assert jsonl_texts(path, 1) == ["hello\n\nhow are you?"]


def test_jsonl_bad_line_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"prompt": "b",}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"bad.jsonl' line 3 is not valid JSON"):
        jsonl_texts(path, 1)


def test_jsonl_non_object_and_missing_key_lines_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "a"}, ["prompt", "b"]])
    with pytest.raises(ConfigurationError, match=r"line 2 is a JSON list, not an object"):
        jsonl_texts(path, 1)
    path = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "a"}, {"text": "b"}])
    with pytest.raises(ConfigurationError, match=r"line 2 has no 'prompt' key; keys seen: text"):
        jsonl_texts(path, 1)
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": 3}])
    with pytest.raises(ConfigurationError, match=r"holds a int, not text"):
        jsonl_texts(path, 1)


def test_jsonl_empty_texts_skipped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "  "}, {"prompt": "real"}])
    assert jsonl_texts(path, 1) == ["real"]


# ---------------------------------------------------------------- Hugging Face


class FakeDataset:
    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self.columns = columns
        self.column_names = list(columns)

    def __getitem__(self, key: str) -> list[Any]:
        return self.columns[key]


def install_fake_datasets(monkeypatch: pytest.MonkeyPatch, load: Any) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def load_dataset(name: str, config: str | None, split: str) -> Any:
        calls.append((name, config, split))
        return load(name)

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_huggingface_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import raises ImportError
    with pytest.raises(MissingExtraError) as err:
        load_prompts(PromptsConfig(source="huggingface", dataset="org/set"), seed=0)
    assert 'pip install "llm-energy-measure[datasets]"' in str(err.value)
    assert "Hugging Face dataset" in str(err.value)


def test_huggingface_columns_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = install_fake_datasets(
        monkeypatch, lambda _: FakeDataset({"id": [1, 2], "instruction": ["do a", "do b"]})
    )
    config = PromptsConfig(source="huggingface", dataset="org/set", dataset_config="en",
                           split="test", num_prompts=2)
    assert [p.text for p in load_prompts(config, seed=0)] == ["do a", "do b"]
    assert calls == [("org/set", "en", "test")]


def test_huggingface_unreachable_names_dataset_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str) -> Any:
        raise ConnectionError("offline mode is enabled")

    install_fake_datasets(monkeypatch, fail)
    with pytest.raises(ConfigurationError) as err:
        load_prompts(PromptsConfig(source="huggingface", dataset="org/set"), seed=0)
    message = str(err.value)
    assert "prompts.dataset 'org/set' split 'train' could not be loaded" in message
    assert "ConnectionError: offline mode is enabled" in message
    assert "local Hugging Face cache" in message


def test_huggingface_real_library_local_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract test against the real ``datasets`` package (skipped when absent)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    datasets = pytest.importorskip("datasets")
    # The cache path is read at import: redirect it even if datasets was imported earlier.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    folder = tmp_path / "local_set"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"question": "q1"}, {"question": "q2"}])
    config = PromptsConfig(source="huggingface", dataset=str(folder), num_prompts=2)
    assert [p.text for p in load_prompts(config, seed=0)] == ["q1", "q2"]

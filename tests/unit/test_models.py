"""The preset catalogue holds exactly the values of DESIGN.md's BGE table."""

from __future__ import annotations

import dataclasses

import pytest

from bge_vdb.models import BGE_PRESETS, PRESETS, get_preset

EN = "Represent this sentence for searching relevant passages: "
ZH = "为这个句子生成表示以用于检索相关文章："

EXPECTED = {
    "BAAI/bge-small-en-v1.5": (384, EN, ("en",)),
    "BAAI/bge-base-en-v1.5": (768, EN, ("en",)),
    "BAAI/bge-large-en-v1.5": (1024, EN, ("en",)),
    "BAAI/bge-small-zh-v1.5": (512, ZH, ("zh",)),
    "BAAI/bge-base-zh-v1.5": (768, ZH, ("zh",)),
    "BAAI/bge-large-zh-v1.5": (1024, ZH, ("zh",)),
}


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_bge_preset_values(model_id: str) -> None:
    spec = PRESETS[model_id]
    dim, instruction, languages = EXPECTED[model_id]
    assert (spec.id, spec.dim, spec.pooling, spec.normalize, spec.max_length) == (model_id, dim, "cls", True, 512)
    assert spec.query_instruction == instruction and spec.languages == languages


def test_catalogue_is_exactly_the_six_bge_models_plus_minilm() -> None:
    assert set(BGE_PRESETS) == set(EXPECTED)
    assert set(PRESETS) == set(EXPECTED) | {"sentence-transformers/all-MiniLM-L6-v2"}
    mini = PRESETS["sentence-transformers/all-MiniLM-L6-v2"]
    assert (mini.dim, mini.pooling, mini.normalize, mini.max_length, mini.query_instruction) == (
        384, "mean", True, 256, "")


def test_instructions_have_no_trailing_space_problem() -> None:
    assert EN.endswith(": ") and not EN.endswith("  ")
    assert "question" not in EN  # LangChain/LlamaIndex ship "...this question..."
    assert ZH.endswith("：") and not ZH.endswith(" ")


def test_get_preset_is_case_insensitive() -> None:
    assert get_preset("baai/BGE-small-zh-v1.5") is PRESETS["BAAI/bge-small-zh-v1.5"]
    assert get_preset("someone/else") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["BAAI/bge-small-en-v1.5"].dim = 1  # type: ignore[misc]

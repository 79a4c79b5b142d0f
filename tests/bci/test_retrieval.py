"""Retrieval in the live loop: the candidate bank, cosine similarities, the ranking, and
where the bank folder is looked for."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bci.errors import BCIError, ConfigError, ModelError
from bci.retrieval import CandidateBank, bank_folder, is_retrieval, top_k
from bci.spec import DecoderSpec, WindowSpec


def _bank(folder: Path, vectors: dict[str, list[float]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, v in vectors.items():
        np.save(folder / f"{name}.npy", np.asarray(v, np.float32))
    return folder


def _spec(**extra) -> DecoderSpec:
    return DecoderSpec(paradigm="meg", classes=[], ch_names=["MEG0111"], sfreq=100.0,
                       window=WindowSpec(mode="epoch", tmin=0.0, tmax=1.0),
                       output="embedding", extra=extra)


@pytest.fixture
def bank(tmp_path) -> CandidateBank:
    return CandidateBank.load(_bank(tmp_path / "bank", {
        "egg": [0.0, 0.0, 2.0], "cat": [1.0, 0.0, 0.0], "dog": [3.0, 3.0, 0.0]}))


def test_bank_loads_every_npy_sorted_by_name_as_unit_vectors(bank, tmp_path):
    assert bank.names == ["cat", "dog", "egg"]
    assert bank.unit.shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(bank.unit, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(bank.unit[1], [1 / math.sqrt(2), 1 / math.sqrt(2), 0.0])
    assert str(tmp_path / "bank") in bank.source


def test_similarities_are_the_cosines(bank):
    np.testing.assert_allclose(bank.similarities(np.array([5.0, 0.0, 0.0])),
                               [1.0, 1 / math.sqrt(2), 0.0], atol=1e-12)
    # (1, 1, 1): cat 1/√3, dog 2/√6, egg 1/√3 — the norm of the embedding does not matter
    expected = [1 / math.sqrt(3), 2 / math.sqrt(6), 1 / math.sqrt(3)]
    np.testing.assert_allclose(bank.similarities(np.ones(3)), expected, atol=1e-12)
    np.testing.assert_allclose(bank.similarities(-4 * np.ones((1, 3))), -np.array(expected),
                               atol=1e-12)
    # against a random bank, the same as the textbook formula
    rng = np.random.default_rng(0)
    v, e = rng.standard_normal((20, 16)), rng.standard_normal(16)
    names = [f"im{k:02d}" for k in range(20)]
    folder = _bank(Path(bank.source).parent / "random", dict(zip(names, v, strict=True)))
    cos = v @ e / (np.linalg.norm(v, axis=1) * np.linalg.norm(e))
    np.testing.assert_allclose(CandidateBank.load(folder).similarities(e), cos, atol=1e-6)


def test_an_all_zero_embedding_is_similar_to_nothing(bank):
    np.testing.assert_array_equal(bank.similarities(np.zeros(3)), np.zeros(3))


def test_an_embedding_of_another_size_names_both_sizes(bank):
    with pytest.raises(ModelError, match=r"embedding has 4 values; the bank .* holds "
                                         r"embeddings of 3"):
        bank.similarities(np.ones(4))


def test_a_row_vector_file_counts_as_a_vector(tmp_path):
    folder = tmp_path / "rows"
    folder.mkdir()
    np.save(folder / "a.npy", np.array([[3.0, 4.0]]))
    np.save(folder / "b.npy", np.array([0.0, 1.0]))
    loaded = CandidateBank.load(folder)
    np.testing.assert_allclose(loaded.unit, [[0.6, 0.8], [0.0, 1.0]])


def test_top_k_best_first_ties_keep_the_earlier_name():
    names = ["a", "b", "c", "d", "e"]
    scores = np.array([0.1, 0.9, 0.5, 0.9, -0.2])
    assert top_k(scores, names, 3) == [("b", 0.9), ("d", 0.9), ("c", 0.5)]
    assert top_k(scores, names, 1) == [("b", 0.9)]
    assert [n for n, _ in top_k(scores, names, 10)] == ["b", "d", "c", "a", "e"]
    assert top_k(np.zeros(3), ["x", "y", "z"], 2) == [("x", 0.0), ("y", 0.0)]
    assert all(isinstance(s, float) for _, s in top_k(scores, names, 5))


def test_top_k_ranks_the_bank_by_similarity(bank):
    ranked = top_k(bank.similarities(np.array([1.0, 0.2, 0.0])), bank.names, 3)
    assert [n for n, _ in ranked] == ["cat", "dog", "egg"]
    assert ranked[0][1] == pytest.approx(1 / math.sqrt(1.04))


def test_bank_folder_session_first_then_spec_relative_to_the_model(tmp_path):
    model = tmp_path / "models" / "meg.onnx"
    session_bank = tmp_path / "elsewhere"
    assert bank_folder(_spec(bank="bank/"), model, session_bank) == session_bank
    assert bank_folder(_spec(bank="bank/"), model, None) == tmp_path / "models" / "bank"
    assert bank_folder(_spec(bank="../shared/b"), model, None) == (
        tmp_path / "models" / ".." / "shared" / "b")
    absolute = tmp_path / "abs"
    assert bank_folder(_spec(bank=str(absolute)), model, None) == absolute
    assert bank_folder(_spec(bank="bank"), None, None) == Path("bank")
    assert bank_folder(_spec(), model, None) is None
    assert bank_folder(_spec(bank=""), model, None) is None


def test_a_bank_named_relative_to_the_model_loads_from_there(tmp_path):
    model = tmp_path / "models" / "meg.onnx"
    _bank(tmp_path / "models" / "bank", {"x": [1.0, 0.0], "y": [0.0, 1.0]})
    folder = bank_folder(_spec(bank="bank"), model, None)
    assert CandidateBank.load(folder).names == ["x", "y"]


def test_is_retrieval_only_for_a_classifier_over_candidates():
    assert is_retrieval(_spec(task="retrieval"))
    assert not is_retrieval(_spec(task="classification"))
    assert not is_retrieval(_spec(bank="bank/"))  # an embedding decoder with a bank folder
    assert not is_retrieval(_spec())


def test_a_missing_or_empty_bank_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BCIError, match=r"nowhere.*no such folder.*\.npy"):
        CandidateBank.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BCIError, match=r"empty.*expected \.npy files.*found none"):
        CandidateBank.load(tmp_path / "empty")


@pytest.mark.parametrize(("write", "match"), [
    (lambda f: f.write_bytes(b"not an array"), r"bad\.npy is not a readable \.npy array"),
    (lambda f: np.save(f, np.ones((2, 3))), r"bad\.npy holds float64 of shape \(2, 3\); "
                                            r"expected a numeric vector"),
    (lambda f: np.save(f, np.array(["a", "b", "c"])), r"bad\.npy .*expected a numeric"),
    (lambda f: np.save(f, np.array([1.0, np.nan, np.inf])), r"bad\.npy holds 2 NaN/Inf"),
    (lambda f: np.save(f, np.ones(5)), r"expected one embedding size"),
])
def test_a_malformed_bank_file_is_named_in_the_error(tmp_path, write, match):
    folder = _bank(tmp_path / "bank", {"good": [1.0, 0.0, 0.0]})
    write(folder / "bad.npy")
    with pytest.raises(BCIError, match=match):
        CandidateBank.load(folder)


def test_an_all_zero_candidate_is_refused_by_name(tmp_path):
    folder = _bank(tmp_path / "bank", {"blank": [0.0, 0.0], "ok": [1.0, 1.0]})
    with pytest.raises(ConfigError, match=r"\['blank'\] have an all-zero embedding"):
        CandidateBank.load(folder)

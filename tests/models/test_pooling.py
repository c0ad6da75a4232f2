"""Pooling: hand-worked values, padding invariance, no in-place edits, and the ST config round trip."""

from __future__ import annotations

import pytest
import torch

from sbert_siamese.errors import ConfigError
from sbert_siamese.models.pooling import (
    POOLING_MODES,
    Pooling,
    check_pooling_mode,
    cls_pool,
    max_pool,
    mean_pool,
)

POOLERS = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}


def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """B=2, T=3, H=2. Row 0 has one padding token (its last); row 1 has none."""
    tokens = torch.tensor(
        [
            [[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]],  # the [5, 6] is padding
            [[-1.0, 0.0], [2.0, 8.0], [0.0, -3.0]],
        ]
    )  # (B, T, H)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])  # (B, T), long as a tokenizer gives it
    return tokens, mask


# Worked out by hand from small_batch():
#   mean row 0: ([1, 2] + [3, -4]) / 2            = [2, -1]
#   mean row 1: ([-1, 0] + [2, 8] + [0, -3]) / 3  = [1/3, 5/3]
#   cls:        the first token of each row       = [1, 2], [-1, 0]
#   max row 0:  max over [1, 2], [3, -4]          = [3, 2]   (padding [5, 6] would give [5, 6])
#   max row 1:  max over all three                = [2, 8]
EXPECTED = {
    "mean": torch.tensor([[2.0, -1.0], [1.0 / 3.0, 5.0 / 3.0]]),
    "cls": torch.tensor([[1.0, 2.0], [-1.0, 0.0]]),
    "max": torch.tensor([[3.0, 2.0], [2.0, 8.0]]),
}


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pooling_matches_hand_worked_values(mode):
    tokens, mask = small_batch()
    torch.testing.assert_close(POOLERS[mode](tokens, mask), EXPECTED[mode], rtol=0, atol=1e-6)
    # The module dispatches to the same function.
    torch.testing.assert_close(Pooling(2, mode)(tokens, mask), EXPECTED[mode], rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("padding_value", [1e30, -1e30, 0.0])
def test_padding_token_vectors_do_not_change_the_output(mode, padding_value):
    tokens, mask = small_batch()
    before = POOLERS[mode](tokens, mask)
    changed = tokens.clone()
    changed[0, 2] = padding_value  # the only padding position
    torch.testing.assert_close(POOLERS[mode](changed, mask), before, rtol=0, atol=0)
    torch.testing.assert_close(before, EXPECTED[mode], rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("mask_dtype", [torch.long, torch.float32, torch.bool])
def test_mask_dtype_does_not_matter(mode, mask_dtype):
    tokens, mask = small_batch()
    torch.testing.assert_close(POOLERS[mode](tokens, mask.to(mask_dtype)), EXPECTED[mode], rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_pooling_does_not_modify_its_input(mode):
    tokens, mask = small_batch()
    tokens_before, mask_before = tokens.clone(), mask.clone()
    Pooling(2, mode)(tokens, mask)
    assert torch.equal(tokens, tokens_before)
    assert torch.equal(mask, mask_before)


def test_max_pool_with_all_real_values_negative():
    # Real values are all negative and the padding vector is 0, larger than any of them: if padding
    # leaked in (or were filled with 0 rather than a very negative number) the answer would be 0.
    tokens = torch.tensor(
        [
            [[-5.0, -7.0], [-3.0, -9.0], [0.0, 0.0]],  # last token is padding
            [[-2.0, -2.5], [-4.0, -1.5], [-6.0, -8.0]],
        ]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # row 0: max([-5, -3], [-7, -9]) = [-3, -7]; row 1: max([-2, -4, -6], [-2.5, -1.5, -8]) = [-2, -1.5]
    expected = torch.tensor([[-3.0, -7.0], [-2.0, -1.5]])
    torch.testing.assert_close(max_pool(tokens, mask), expected, rtol=0, atol=0)


def test_max_pool_gradient_flows_only_to_the_winning_real_token():
    tokens, mask = small_batch()
    tokens.requires_grad_(True)
    max_pool(tokens, mask).sum().backward()
    # row 0: argmax is token 1 for dim 0 (3 > 1) and token 0 for dim 1 (2 > -4); padding gets nothing.
    # row 1: argmax is token 1 for both dims (2, 8).
    expected = torch.tensor(
        [
            [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]],
        ]
    )
    torch.testing.assert_close(tokens.grad, expected, rtol=0, atol=0)


def test_mean_pool_all_padding_row_is_finite():
    tokens, mask = small_batch()
    mask = mask.clone()
    mask[0] = 0  # row 0 is padding only
    out = mean_pool(tokens, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.zeros(2), rtol=0, atol=0)  # 0 / clamp(0) = 0, not NaN
    torch.testing.assert_close(out[1], EXPECTED["mean"][1], rtol=0, atol=1e-6)  # other rows unaffected


def test_mean_pool_matches_a_python_loop_on_random_input():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(4, 7, 5, generator=generator, dtype=torch.float64)
    lengths = [7, 3, 1, 5]
    mask = torch.zeros(4, 7, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    expected = torch.stack([tokens[row, :length].mean(dim=0) for row, length in enumerate(lengths)])
    expected_max = torch.stack([tokens[row, :length].max(dim=0).values for row, length in enumerate(lengths)])
    torch.testing.assert_close(mean_pool(tokens, mask), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(max_pool(tokens, mask), expected_max, rtol=0, atol=0)


@pytest.mark.parametrize("bad", ["bad", "MEAN", "mean_sqrt_len", ""])
def test_unknown_mode_raises_config_error_listing_valid_modes(bad):
    for make in (lambda: Pooling(8, bad), lambda: check_pooling_mode(bad)):
        with pytest.raises(ConfigError) as info:
            make()
        message = str(info.value)
        assert repr(bad) in message
        for mode in POOLING_MODES:
            assert mode in message
        assert isinstance(info.value, ValueError)  # callers catching ValueError still work


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_check_pooling_mode_returns_valid_modes(mode):
    assert check_pooling_mode(mode) == mode


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_st_config_round_trip(mode):
    config = Pooling(384, mode).to_st_config()
    assert config == {
        "word_embedding_dimension": 384,
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": mode == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    loaded = Pooling.from_st_config(config)
    assert (loaded.dimension, loaded.mode) == (384, mode)
    assert loaded.to_st_config() == config


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_from_st_config_reads_the_newer_string_form(mode):
    loaded = Pooling.from_st_config(
        {"embedding_dimension": 384, "pooling_mode": mode, "include_prompt": True}
    )
    assert (loaded.dimension, loaded.mode) == (384, mode)


def test_from_st_config_ignores_false_flags_for_unsupported_modes():
    # Real sentence-transformers configs list every flag, the unsupported ones set to false.
    config = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    loaded = Pooling.from_st_config(config)
    assert (loaded.dimension, loaded.mode) == (32, "mean")


@pytest.mark.parametrize(
    "config",
    [
        # two modes at once
        {"word_embedding_dimension": 8, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True},
        # a mode sentence-transformers has and we do not
        {"word_embedding_dimension": 8, "pooling_mode_mean_sqrt_len_tokens": True},
        {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True, "pooling_mode_lasttoken": True},
        # no mode at all
        {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": False},
        # the newer string form with an unsupported mode
        {"embedding_dimension": 8, "pooling_mode": "lasttoken"},
        # no dimension
        {"pooling_mode_mean_tokens": True},
    ],
    ids=["two-modes", "mean-sqrt-len", "mean-and-lasttoken", "no-mode", "string-lasttoken", "no-dimension"],
)
def test_from_st_config_rejects_bad_configs_naming_the_source(config):
    source = "some/model/1_Pooling/config.json"
    with pytest.raises(ConfigError) as info:
        Pooling.from_st_config(config, source=source)
    assert source in str(info.value)


def test_from_st_config_error_lists_valid_modes():
    with pytest.raises(ConfigError) as info:
        Pooling.from_st_config({"word_embedding_dimension": 8, "pooling_mode_mean_sqrt_len_tokens": True})
    message = str(info.value)
    assert "1_Pooling/config.json" in message  # the default source
    assert "mean_sqrt_len" in message  # says what it found
    for mode in POOLING_MODES:
        assert mode in message

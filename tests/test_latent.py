"""The standard latent's error (kacnb.experiments.latent): real at small T, falling with T, absent
for the
mean-reverting path; each verdict row flips under a plausible wrong measurement."""

from __future__ import annotations

import copy

import torch

from kacnb.cfm.metrics import grid_mixture
from kacnb.experiments.latent import excess, latent_claims, latent_gap


def _gaps():
    gen = torch.Generator().manual_seed(0)
    return latent_gap(grid_mixture(), [(25.0, 5.0), (1600.0, 10.0)], [0.25, 1.0, 4.0], 400, gen)


def test_gap_is_real_falls_with_T_and_vanishes_for_mean_reversion():
    gaps = _gaps()
    for pair in [(25.0, 5.0), (1600.0, 10.0)]:
        seq = [g for g in gaps if (g["a"], g["c"]) == pair]
        # x0 is spread over [-1, 1]^2: at small T the data-free latent misses it by O(1)
        assert seq[0]["w2"] > 0.5 and seq[0]["w2"] > 3 * seq[0]["floor"]
        assert excess(seq[0]) > excess(seq[-1])
    # the mean-reverting latent is K(T) itself: distance at the finite-sample floor
    assert max(g["w2_mr"] / g["floor"] for g in gaps) < 2.0
    assert [r["verdict"] for r in latent_claims(gaps)] == ["reproduced"] * 3


def test_each_latent_row_flips():
    gaps = _gaps()
    wrong = copy.deepcopy(gaps)
    for g in wrong:  # a latent that ignores the data would show no gap
        g["w2"] = g["floor"]
    assert latent_claims(wrong)[0]["verdict"] == "differs"
    wrong = copy.deepcopy(gaps)
    for g in wrong:  # a gap growing with T
        g["w2"] = g["T"]
    assert [r["verdict"] for r in latent_claims(wrong)][1] == "differs"
    wrong = copy.deepcopy(gaps)
    wrong[0]["w2_mr"] = 10 * wrong[0]["floor"]  # a mean-reverting latent that keeps the data
    assert [r["verdict"] for r in latent_claims(wrong)] == ["reproduced", "reproduced", "differs"]

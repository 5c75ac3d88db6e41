"""Experiment logic of notebook 04 (kacnb.experiments.gmm2d) against problems with known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from kacnb.cfm.metrics import GaussianMixture, grid_mixture, nearest_mode_distance, nll
from kacnb.cfm.models import MLP
from kacnb.cfm.paths import DiffusionPath, KacPath
from kacnb.experiments import gmm2d
from kacnb.theory.kac import Kac, kac_velocity

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_paper_models():
    # The listed models are the paper's (paper Section 7.1), checked through what the paths
    # do, not through the constants they were built from.
    specs = gmm2d.paper_models(eps=1e-3)
    assert [s.key for s in specs] == ["kac_25_5", "kac_64_8", "kac_1600_10", "diffusion"]
    assert [s.paper_steps for s in specs] == [80_000, 280_000, 460_000, 420_000]
    n = 40_000
    x0 = torch.zeros(n, 2, dtype=F64)
    for spec, (a, c) in zip(specs[:3], [(25, 5), (64, 8), (1600, 10)], strict=True):
        # E K(T)^2 = (c^2/a) (T - (1 - exp(-2 a T))/(2 a)) for the 1D Kac process, T = 1
        k = spec.path.latent(x0, generator=gen(a)) - x0
        expected = c**2 / a * (1.0 - (1.0 - math.exp(-2.0 * a)) / (2.0 * a))
        var = float(k.pow(2).mean())
        assert var == pytest.approx(expected, rel=5 * math.sqrt(2.0 / (2 * n)) + 0.01), spec.key
        assert float(k.abs().max()) <= c  # support [-cT, cT] per component (Prop 11)
        # The speed bound is attained: at small t both components sit on atoms, |v| = c sqrt 2.
        t = torch.full((n,), 1e-4, dtype=F64)
        _, target = spec.path.draw(t, x0, generator=gen(1))
        speeds = target.norm(dim=1)
        assert float(speeds.max()) == pytest.approx(spec.speed_bound, rel=1e-12)
        assert spec.speed_bound == pytest.approx(c * math.sqrt(2))
        assert spec.path.t_min == 0.0 and spec.path.T == 1.0
    # diffusion: X_T - X_0 ~ N(0, T I) with sigma = 1, living on [eps, T]
    diff = specs[3]
    w = diff.path.latent(x0, generator=gen(2)) - x0
    assert float(w.pow(2).mean()) == pytest.approx(1.0, rel=0.03)
    assert not diff.is_kac and diff.path.t_min == 1e-3


def test_nll_floor_is_the_mean_nll_of_exact_samples():
    gmm = grid_mixture(std=1e-4)
    x = gmm.sample(200_000, generator=gen(1), dtype=F64)
    assert gmm2d.nll_floor(gmm) == pytest.approx(nll(x, gmm), abs=0.02)
    assert gmm2d.nll_floor(gmm) == pytest.approx(-13.38, abs=0.01)


def test_blur_distance_of_truncated_diffusion_samples():
    gmm = grid_mixture(std=1e-4)
    eps = 1e-3
    x0 = gmm.sample(100_000, generator=gen(2), dtype=F64)
    x = x0 + math.sqrt(eps) * torch.randn(x0.shape, generator=gen(3), dtype=F64)
    measured = nearest_mode_distance(x, gmm.means)
    assert measured == pytest.approx(gmm2d.blur_distance(1e-4, 1.0, eps), rel=0.01)
    assert gmm2d.blur_distance(1e-4) == pytest.approx(1e-4 * math.sqrt(math.pi / 2))


def test_generate_with_the_exact_diffusion_velocity_of_one_point():
    # For data delta_m the marginal velocity is (x - m)/(2t): x(eps) = m + (x_T - m) sqrt(eps/T).
    path = DiffusionPath(sigma=1.0, T=1.0, eps=0.01)
    m = torch.tensor([[0.3, -0.7]], dtype=F64).expand(50, 2)
    res = gmm2d.generate(
        lambda t, x: (x - m) / (2 * t[:, None]), path, m, generator=gen(4), rtol=1e-9, atol=1e-11
    )
    x_T = path.latent(m, generator=gen(4))
    torch.testing.assert_close(res.x, m + (x_T - m) * 0.1, rtol=1e-6, atol=1e-7)
    assert res.nfe > 0


def test_generate_with_the_exact_kac_velocity_of_one_point_returns_to_it():
    # The Kac flow of delta_m keeps |x - m| <= c t per coordinate, so it ends in m at t = 0.
    a, c = 4.0, 2.0
    path = KacPath(Kac(a, c), T=1.0)
    m = torch.tensor([[0.5, 1.0]], dtype=F64).expand(200, 2)
    res = gmm2d.generate(
        lambda t, x: kac_velocity(t[:, None], x - m, a, c),
        path,
        m,
        generator=gen(5),
        n_saved=5,
        return_trajectory=True,
        rtol=1e-8,
        atol=1e-9,
    )
    assert float((res.x - m).abs().max()) < 1e-3
    for t, x in zip(res.times.tolist(), res.trajectory, strict=True):
        assert float((x - m).abs().max()) <= c * t + 1e-3


def test_nll_validator_matches_generation_and_rejects_nan():
    gmm = grid_mixture()
    path = KacPath(Kac(25.0, 5.0))

    def field(t, x):
        return -x

    validate = gmm2d.nll_validator(path, gmm, 64, dtype=F64)
    value = validate(field, gen(6))
    g = gen(6)
    x0 = gmm.sample(64, generator=g, dtype=F64)
    x = gmm2d.generate(field, path, x0, generator=g).x
    assert value == pytest.approx(nll(x, gmm), rel=1e-12)
    assert validate(lambda t, x: x * float("nan"), gen(6)) == math.inf


def test_train_model_keeps_the_best_weights_and_resumes(tmp_path):
    spec = gmm2d.paper_models()[0]
    kw = dict(steps=30, batch_size=32, width=16, depth=2, eval_every=10, n_val=32, progress=False)
    tr = gmm2d.train_model(spec, ema_decay=0.9, **kw)
    assert [s for s, _ in tr.result.validation] == [10, 20, 30]
    assert tr.result.best_value == min(v for _, v in tr.result.validation)
    # The returned model carries the best weights: validating it reproduces the best value.
    validate = gmm2d.nll_validator(spec.path, grid_mixture(), 32)
    assert validate(tr.model, gen(1)) == pytest.approx(tr.result.best_value, rel=1e-6)
    assert not any(p.requires_grad for p in tr.model.parameters())

    first = gmm2d.train_model(spec, checkpoint_dir=tmp_path, **kw)
    assert len(list(tmp_path.glob("kac_25_5-*.pt"))) == 1
    again = gmm2d.train_model(spec, checkpoint_dir=tmp_path, **kw)  # resumes the finished run
    assert again.result.validation == first.result.validation
    assert torch.equal(again.result.losses, first.result.losses)
    for p, q in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_log_time_grid():
    kac = gmm2d.log_time_grid(KacPath(Kac(1.0, 1.0), T=2.0), 5, t_floor=1e-4)
    assert kac[0] == 2.0 and kac[-1] == 0.0 and kac[-2] == pytest.approx(2e-4)
    ratios = kac[1:-2] / kac[:-3]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))
    dif = gmm2d.log_time_grid(DiffusionPath(eps=1e-3), 4)
    assert dif.tolist() == pytest.approx([1.0, 1e-1, 1e-2, 1e-3])


def test_speed_along_a_constant_field():
    v = torch.tensor([3.0, -4.0], dtype=F64)
    x_T = torch.randn(7, 2, dtype=F64, generator=gen(7))
    times = torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=F64)
    pos, speed = gmm2d.speed_along(lambda t, x: v.expand_as(x), x_T, times)
    assert pos.shape == (4, 7, 2) and speed.shape == (4, 7)
    torch.testing.assert_close(speed, torch.full((4, 7), 5.0, dtype=F64))
    torch.testing.assert_close(pos[-1], x_T - v, rtol=1e-9, atol=1e-9)


def test_sample_quality_of_exact_and_shifted_samples():
    gmm = grid_mixture(std=1e-4)
    x = gmm.sample(45_000, generator=gen(8), dtype=F64)
    ref = gmm.sample(500, generator=gen(9), dtype=F64)
    q = gmm2d.sample_quality(x, gmm, ref, radii=(5e-4, 0.05), n_w2=500)
    assert q["nll"] == pytest.approx(gmm2d.nll_floor(gmm), abs=0.03)
    assert q["nll_median"] < q["nll_q90"]
    assert q["covered"][5e-4] == pytest.approx(1.0, abs=1e-3)
    assert q["balance"][5e-4] == pytest.approx(1.0, abs=0.1)
    assert q["nearest"] == pytest.approx(1e-4 * math.sqrt(math.pi / 2), rel=0.02)
    assert 0.0 < q["w2"] < 0.5  # mode-count noise of two finite samples only
    shifted = gmm2d.sample_quality(x + torch.tensor([0.01, 0.0], dtype=F64), gmm)
    assert shifted["covered"][5e-4] == 0.0 and shifted["covered"][0.05] == 1.0
    assert shifted["nearest"] == pytest.approx(0.01, rel=0.01)
    assert "w2" not in shifted
    # -log p grows like dist^2 / (2 std^2): the shifted mean NLL is about 5e3 above the floor.
    assert shifted["nll"] - q["nll"] == pytest.approx(0.01**2 / (2 * 1e-8), rel=0.02)


def test_single_mode_mixture_nll_floor():
    gmm = GaussianMixture(torch.zeros(1, 3, dtype=F64), 0.5, torch.ones(1, dtype=F64))
    assert gmm2d.nll_floor(gmm) == pytest.approx(1.5 * math.log(2 * math.pi * math.e * 0.25))


def _claim_rows():
    def row(share50, nll, nearest, modes, nfe, vmax, bound, over=0.0, late=1.0, early=1.0):
        return dict(
            share_5s=share50 / 2,
            share_50s=share50,
            nll=nll,
            nearest=nearest,
            modes_loose=modes,
            nfe=nfe,
            vmax=vmax,
            bound=bound,
            over_bound=over,
            vmax_late=late,
            vmax_early=early,
        )

    rows = {
        "k1": row(0.9, 10.0, 0.001, 9, 80, 7.0, 7.07),
        "k2": row(0.7, 20.0, 0.002, 9, 90, 15.0, 11.3, over=0.02),
        "d": row(0.01, 1e5, 0.05, 9, 200, 60.0, None, late=60.0, early=3.0),
    }
    trunc = [
        {"eps": 1e-2, "nfe": 170, "status": "ok"},
        {"eps": 1e-5, "nfe": 420, "status": "ok"},
    ]
    return rows, trunc


# One plausible wrong result per row: (row index, mutation of the inputs).
FLIPS = [
    (0, lambda r, t: r["k2"].update(share_50s=0.3)),  # Kac clusters wider than 50 s
    (1, lambda r, t: r["d"].update(share_50s=0.4)),  # diffusion without blobs
    (2, lambda r, t: r["k1"].update(modes_loose=8)),  # a missed mode
    (3, lambda r, t: r["k2"].update(nll=2e5)),  # a Kac NLL above diffusion's
    (4, lambda r, t: r["k1"].update(nearest=0.06)),  # a Kac model blurrier than diffusion
    (5, lambda r, t: [r[k].update(nearest=0.045) for k in ("k1", "k2")]),  # above the floor
    (6, lambda r, t: r["d"].update(nfe=85)),  # diffusion cheaper than a Kac model
    (7, lambda r, t: r["k1"].update(over_bound=0.2)),  # learned speed far above c sqrt(2)
    (8, lambda r, t: r["d"].update(vmax_late=4.0)),  # no growth of the diffusion speed
    (9, lambda r, t: t[1].update(nfe=180)),  # no extra cost at small eps
]


def test_claims_all_reproduced_with_thresholds():
    rows, trunc = _claim_rows()
    table = gmm2d.claims(rows, ["k1", "k2"], "d", diffusion_floor=0.04, truncation=trunc)
    assert [r["verdict"] for r in table] == ["reproduced"] * len(FLIPS)
    assert all(r["threshold"] for r in table)
    assert "max/bound: 0.99, 1.33" in table[7]["measured"]
    assert table[0]["threshold"] == f">= {gmm2d.THRESHOLDS['kac_share_50s']:g} each"


@pytest.mark.parametrize("index, mutate", FLIPS, ids=[str(i) for i, _ in FLIPS])
def test_each_claim_flips_under_a_wrong_result(index, mutate):
    rows, trunc = _claim_rows()
    mutate(rows, trunc)
    table = gmm2d.claims(rows, ["k1", "k2"], "d", diffusion_floor=0.04, truncation=trunc)
    verdicts = [r["verdict"] for r in table]
    assert verdicts[index] == "differs"
    assert verdicts.count("differs") == 1, verdicts


def test_truncation_failure_counts_as_the_explosion():
    rows, trunc = _claim_rows()
    trunc[1].update(nfe=100, status="step-size collapse")
    table = gmm2d.claims(rows, ["k1", "k2"], "d", diffusion_floor=0.04, truncation=trunc)
    assert table[-1]["verdict"] == "reproduced" and "failed at eps = 1e-05" in table[-1]["measured"]


def test_atom_shares_of_the_training_targets():
    # exp(-a t) of the float32 targets sit on the atoms; evaluated through x_t - x0 with data
    # of size ~10 (several binades) far fewer do (paper Sections 6-7)
    from kacnb.cfm.paths import MeanRevertingKacPath
    from kacnb.theory.kac import Kac

    g = gen(30)
    for path in (gmm2d.paper_models()[0].path, MeanRevertingKacPath(Kac(25.0, 5.0))):
        r = gmm2d.atom_shares(path, 1e-3, 10.0 * torch.randn(20_000, 2, generator=g), g)
        assert r["expected"] == pytest.approx(math.exp(-0.025))
        assert abs(r["on_atoms"] - r["expected"]) < 5 * r["se"]
        assert r["via_difference"] < r["expected"] - 50 * r["se"]


def _exact_inputs():
    oracle = {
        "k1": {"share_50s": 0.95, "nfe": 400},
        "k2": {"share_50s": 0.9, "nfe": 300},
        "d": {"share_50s": 0.0, "nfe": 600},
    }
    distances = [
        {"a": a, "c": c, "t": t, "rel": rel}
        for (a, c), rels in (((25.0, 5.0), (0.98, 0.05)), ((1600.0, 10.0), (0.05, 0.001)))
        for t, rel in zip((0.01, 0.5), rels, strict=True)
    ]
    return oracle, distances


def test_exact_field_claims_reproduce_and_flip():
    oracle, distances = _exact_inputs()
    rows = gmm2d.exact_field_claims(oracle, distances, ["k1", "k2"], "d")
    assert [r["verdict"] for r in rows] == ["reproduced"] * 3
    assert "0.950, 0.900" in rows[0]["measured"] and "t=0.01: 0.98, 0.05" in rows[2]["measured"]
    # a perfect network that misses the modes, a Kac field slower than diffusion, a distance
    # that grows with a at one time: each flips its own row only
    worse = {**oracle, "k2": {"share_50s": 0.4, "nfe": 300}}
    slower = {**oracle, "k1": {"share_50s": 0.95, "nfe": 601}}
    rising = [dict(d) for d in distances]
    rising[-1]["rel"] = 0.06  # (1600, 10) at t = 0.5 above (25, 5)'s 0.05
    for args, flipped in (
        ((worse, distances), 0),
        ((slower, distances), 1),
        ((oracle, rising), 2),
    ):
        verdicts = [r["verdict"] for r in gmm2d.exact_field_claims(*args, ["k1", "k2"], "d")]
        assert verdicts == ["differs" if i == flipped else "reproduced" for i in range(3)]


def test_run_summary_is_computed_from_the_results():
    specs = gmm2d.paper_models()
    keys = [s.key for s in specs]
    rows = {
        k: {
            "nll": 10.0 * (i + 1),
            "share_50s": 0.1 * (i + 1),
            "nearest": 0.01 * (i + 1),
            "nfe": 100 + i,
        }
        for i, k in enumerate(keys)
    }
    loose = dict(zip(keys, (0.99, 0.98, 1.0, 0.5), strict=True))
    best = dict(zip(keys, (80_000, 500_000, 300_000, 500_000), strict=True))
    table = [
        {"claim": "A", "measured": "1", "threshold": ">= 0", "verdict": "reproduced"},
        {"claim": "B", "measured": "0.2", "threshold": ">= 0.5", "verdict": "differs"},
    ]
    text = gmm2d.run_summary(specs, rows, loose, best, 500_000, table)
    assert text[0] == "1 of 2 claims reproduced at 500,000 iterations per model."
    # Kac spans over the three Kac models, diffusion its own number
    assert "Kac 98.0-100.0%, diffusion 50.0%" in text[1]
    assert "Kac 10.0-30.0%, diffusion 40.0%" in text[1]
    assert "Kac 10-30, diffusion 40" in text[2]
    assert "Kac 100, 101, 102; diffusion 103" in text[3]
    assert "(paper 80,000)" in text[4] and "still improving" in text[4]
    assert specs[1].label in text[4].split("at the end of the budget for")[1]
    assert text[5] == "Differs from the paper: B (0.2; threshold >= 0.5)."
    table[1]["verdict"] = "reproduced"
    best = dict.fromkeys(keys, 100_000)
    text = gmm2d.run_summary(specs, rows, loose, best, 500_000, table)
    assert text[-1] == "No claim differs from the paper at this scale."
    assert "still improving" not in text[4]
    # the baseline's sentence, and "ours" rows reported apart from the paper's
    table.append({"claim": "ours: C", "measured": "3", "threshold": "< 1", "verdict": "differs"})
    rf = {"share_50s": 0.963, "nll": 310.3, "nearest": 0.00215, "nfe": 176}
    text = gmm2d.run_summary(
        specs, rows, loose, best, 500_000, table, (gmm2d.baseline_model(), rf, 1.0, 500_000)
    )
    assert "Baseline rectified flow" in text[5] and "50 mode standard deviations 96.3%" in text[5]
    assert "176 dopri5 evaluations, selected checkpoint 500,000." in text[5]
    assert text[6] == "No claim differs from the paper at this scale."
    assert text[7] == "Our own comparisons that differ: ours: C (3; threshold < 1)."


def test_jacobian_norm_of_linear_and_coupling_fields():
    # v = A x: the spectral norm is A's largest singular value, whatever x and t
    A = torch.tensor([[2.0, 1.0], [0.0, -3.0]], dtype=F64)
    x = torch.randn(6, 2, dtype=F64, generator=gen(11))
    got = gmm2d.jacobian_norm(lambda t, y: y @ A.T, 0.3, x)
    torch.testing.assert_close(got, torch.linalg.matrix_norm(A, ord=2).expand(6))
    # the coupling field near a Dirac mode m, v = (x - m)/t (paper Section 3): norm 1/t
    m = torch.tensor([1.0, -1.0], dtype=F64)
    times = torch.tensor([0.1, 0.01, 0.001], dtype=F64)
    pos = m + 0.01 * torch.randn(3, 5, 2, dtype=F64, generator=gen(12))
    lip = gmm2d.lipschitz_along(lambda t, y: (y - m) / t[:, None], pos, times)
    torch.testing.assert_close(lip, (1 / times)[:, None].expand(3, 5))
    # a field with a coupling between the rows of a batch would be wrong here; an MLP is not
    net = MLP(dim=2, width=16, depth=2).double()
    xs = torch.randn(4, 2, dtype=F64, generator=gen(13))
    one = torch.cat([gmm2d.jacobian_norm(net, 0.5, xs[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(gmm2d.jacobian_norm(net, 0.5, xs), one)


def test_median_near_picks_the_log_closest_positive_time():
    times = torch.tensor([1.0, 0.1, 0.01, 0.001, 0.0], dtype=F64)
    values = torch.arange(15, dtype=F64).reshape(5, 3)
    assert gmm2d.median_near(times, values, 0.002) == 10.0  # 0.001 (log-closer than 0.01)
    assert gmm2d.median_near(times, values, 1e-9) == 10.0  # never the t = 0 row
    assert gmm2d.median_near(times, values, 0.5) == 1.0


def test_baseline_claims_flip_with_the_numbers():
    rows = {
        "k1": {"share_50s": 0.6, "nfe": 200},
        "k2": {"share_50s": 0.8, "nfe": 300},
        "rf": {"share_50s": 0.1, "nfe": 500},
    }
    good = gmm2d.baseline_claims(rows, ["k1", "k2"], "rf", lip_growth=60.0, speed_growth=1.2)
    assert [r["verdict"] for r in good] == ["reproduced"] * 4
    bad = gmm2d.baseline_claims(
        {**rows, "rf": {"share_50s": 0.7, "nfe": 250}}, ["k1", "k2"], "rf", 3.0, 5.0
    )
    assert [r["verdict"] for r in bad] == ["differs"] * 4
    assert "RF 0.700" in bad[2]["measured"] and "RF 250" in bad[3]["measured"]


def test_prefix_model_differs_from_the_correct_one_only_in_the_law_of_the_noise():
    correct = next(s for s in gmm2d.paper_models() if s.key == "kac_25_5")
    pre = gmm2d.prefix_model()
    assert pre.key == "kac_25_5_prefix" and pre.key != correct.key
    assert pre.path.noise_law.even_weight == pytest.approx(5.0 / 25.0)
    assert correct.path.noise_law is None
    assert (pre.path.kac.a, pre.path.kac.c, pre.path.T) == (25.0, 5.0, correct.path.T)
    assert (pre.paper_steps, pre.speed_bound) == (correct.paper_steps, correct.speed_bound)


def test_law_comparison_text_follows_the_field_errors():
    pre = gmm2d.prefix_model()

    def scores(err_prefix):
        return {
            "kac_25_5": {"field_median": 0.2, "nll": 1700.0},
            pre.key: {"field_median": err_prefix, "nll": 2100.0},
        }

    hidden = gmm2d.law_comparison_text(scores(0.19), "kac_25_5", pre)
    assert "no farther" in hidden and "0.95 times" in hidden and "not visible" in hidden
    # (25, 5) at T = 1: the pre-fix law is 1.4 % narrower in variance (notebook 02)
    assert "1.4% narrower" in hidden
    shows = gmm2d.law_comparison_text(scores(0.3), "kac_25_5", pre)
    assert "farther from the correct field: 1.50 times" in shows and "not visible" not in shows


def test_law_comparison_record_keeps_each_radius_under_its_name():
    pre = gmm2d.prefix_model()
    radii = (5e-4, 5e-3, 0.05)
    scores = {
        key: {"nll": nll, "nfe": 50, "field_median": err,
              "covered": {5e-4: cov[0], 5e-3: cov[1], 0.05: cov[2]}}
        for key, nll, err, cov in (("kac_25_5", 1700.0, 0.2, (0.0, 0.5, 0.9)),
                                   (pre.key, 2100.0, 0.19, (0.1, 0.6, 0.95)))
    }  # fmt: skip
    rec = gmm2d.law_comparison_record(scores, radii, 4096, "pretrained bundle x")
    assert rec["n_gen"] == 4096 and rec["weights"] == "pretrained bundle x"
    assert rec[pre.key] == {"nll": 2100.0, "coverage_5sigma": 0.1, "coverage_50sigma": 0.6,
                            "coverage_0.05": 0.95, "nfe": 50, "field_median": 0.19}  # fmt: skip
    assert rec["kac_25_5"]["coverage_5sigma"] == 0.0
    json.dumps(rec)  # goes into the metrics file as it is
    with pytest.raises(ValueError, match="three coverage radii"):
        gmm2d.law_comparison_record(scores, radii[:2], 4096, "x")

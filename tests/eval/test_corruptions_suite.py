"""The ``corruptions`` evaluation suite, ``add_mce`` and its report section."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ssrobust.corruptions as C  # noqa: E402
import ssrobust.eval.corruptions  # noqa: E402,F401  (registration)
import ssrobust.report.corruptions  # noqa: E402,F401
from ssrobust.errors import ConfigError  # noqa: E402
from ssrobust.eval.base import SUITES, EvalContext  # noqa: E402
from ssrobust.corruptions.mce import add_mce  # noqa: E402
from ssrobust.report.base import SECTIONS  # noqa: E402


class ChannelMeans(nn.Module):
    """Predicts the channel with the largest mean: logits = per-channel means (a closed form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) * 10


def toy(n: int = 24, size: int = 16) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.integers(40, 110, size=(n, size, size, 3))
    x[np.arange(n), :, :, y] += 10
    return x.astype(np.uint8), torch.as_tensor(y)


def context(model: nn.Module | None = None, **kw) -> EvalContext:
    x, y = toy()
    return EvalContext(model=model or ChannelMeans(), images=x, labels=y, class_names=["r", "g", "b"],
                       batch_size=10, progress=False, seed=kw.pop("seed", 0), **kw)


def test_record_structure_and_a_closed_form_accuracy():
    """Contrast scales around each channel's mean, so a channel-mean classifier keeps its clean
    accuracy (1.0 here) at every severity; the pale-blue frost layer costs accuracy."""
    rec = SUITES.get("corruptions")(context(), names=["contrast", "frost", "impulse_noise"], severities=[1, 5])
    assert rec["source"] == "on_the_fly" and rec["n_images"] == 24 and rec["param_set"] == "cifar"
    assert rec["clean_accuracy"] == 1.0
    assert rec["accuracy"]["contrast"] == {"1": 1.0, "5": 1.0}
    assert rec["accuracy"]["frost"]["5"] < 0.9  # the bluish frost layer favours the blue class
    assert set(rec["accuracy"]) == {"contrast", "frost", "impulse_noise"}
    for name, per in rec["accuracy"].items():
        assert rec["mean_accuracy"][name] == pytest.approx(np.mean(list(per.values())))
    assert rec["mean_accuracy_benchmark"] is None  # not all 15 evaluated
    assert rec["mean_accuracy_all"] == pytest.approx(np.mean(list(rec["mean_accuracy"].values())))
    assert rec["mean_accuracy_by_severity"]["5"] == pytest.approx(
        np.mean([rec["accuracy"][n]["5"] for n in rec["accuracy"]]))
    json.dumps(rec)


def test_defaults_cover_all_19_corruptions_and_5_severities():
    rec = SUITES.get("corruptions")(context(), max_images=6)
    assert rec["names"] == list(C.NAMES) and rec["severities"] == [1, 2, 3, 4, 5] and rec["n_images"] == 6
    assert rec["mean_accuracy_benchmark"] == pytest.approx(np.mean([rec["mean_accuracy"][n] for n in C.BENCHMARK]))


def test_seeded_and_identical_to_evaluating_the_written_folder(tmp_path):
    ctx = context(seed=5)
    names = ["fog", "shot_noise", "glass_blur"]
    rec = SUITES.get("corruptions")(ctx, names=names, severities=[2, 4])
    assert SUITES.get("corruptions")(ctx, names=names, severities=[2, 4])["accuracy"] == rec["accuracy"]
    x, y = toy()
    C.write_corrupted_dataset(x, y.numpy(), tmp_path, names=names, severities=[2, 4], seed=5,
                              batch_size=ctx.batch_size, progress=False)
    from_folder = SUITES.get("corruptions")(ctx, folder=str(tmp_path))
    assert from_folder["source"] == "folder" and from_folder["severities"] == [2, 4]
    assert from_folder["accuracy"] == {n: rec["accuracy"][n] for n in ("shot_noise", "glass_blur", "fog")}
    assert from_folder["clean_accuracy"] == rec["clean_accuracy"]


def test_model_mode_is_restored_and_bad_options_fail():
    model = ChannelMeans().train()
    SUITES.get("corruptions")(context(model), names=["contrast"], severities=[1])
    assert model.training
    with pytest.raises(ConfigError, match="unknown fogg"):
        SUITES.get("corruptions")(context(), names=["fogg"])
    with pytest.raises(ConfigError, match="1..5"):
        SUITES.get("corruptions")(context(), names=["fog"], severities=[0])


@pytest.mark.parametrize("max_images", [0, -3])
def test_max_images_below_one_is_refused_not_recorded_as_accuracy_zero(max_images):
    with pytest.raises(ConfigError, match=f"corruptions.max_images must be an integer >= 1.*got {max_images}"):
        SUITES.get("corruptions")(context(), names=["contrast"], severities=[1], max_images=max_images)


def test_an_empty_test_set_is_an_error():
    ctx = context()
    ctx.images, ctx.labels = ctx.images[:0], ctx.labels[:0]
    with pytest.raises(ConfigError, match="no images"):
        SUITES.get("corruptions")(ctx, names=["contrast"], severities=[1])


def _record(acc: dict, clean: float) -> dict:
    return {"accuracy": {n: {str(s): a for s, a in enumerate(v, 1)} for n, v in acc.items()},
            "clean_accuracy": clean}


def test_add_mce_by_hand():
    base = _record({"fog": [0.8, 0.6], "snow": [0.9, 0.5]}, clean=0.95)
    ours = _record({"fog": [0.9, 0.7], "snow": [0.9, 0.8]}, clean=0.96)
    out = add_mce(ours, base, "base")["mce"]
    assert out["ce"]["fog"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert out["ce"]["snow"] == pytest.approx((0.1 + 0.2) / (0.1 + 0.5))
    assert out["mce_all"] == pytest.approx(((0.4 / 0.6) + (0.3 / 0.6)) / 2)
    assert out["relative_ce"]["fog"] == pytest.approx((0.1 - 0.04 + 0.3 - 0.04) / (0.2 - 0.05 + 0.4 - 0.05))
    assert out["mce_benchmark"] is None and out["baseline"] == "base" and out["severities"] == [1, 2]
    assert add_mce(base, base)["mce"]["mce_all"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="no corruption in common"):
        add_mce(_record({"fog": [0.5]}, 0.9), _record({"snow": [0.5]}, 0.9))


def test_baseline_option_reads_a_results_file(tmp_path):
    ctx = context()
    base = SUITES.get("corruptions")(ctx, names=["frost"], severities=[3, 5])
    assert base["accuracy"]["frost"]["5"] < 1.0
    (tmp_path / "results.json").write_text(json.dumps({"suites": {"corruptions": base}}))
    rec = SUITES.get("corruptions")(ctx, names=["frost"], severities=[3, 5],
                                    baseline=str(tmp_path / "results.json"))
    assert rec["mce"]["mce_all"] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="no corruptions record"):
        (tmp_path / "other.json").write_text("{}")
        SUITES.get("corruptions")(ctx, names=["frost"], baseline=str(tmp_path / "other.json"))


def test_report_section_draws_bars_and_severity_curves_and_tables(tmp_path):
    a = SUITES.get("corruptions")(context(), names=["contrast", "fog", "snow"])
    b = json.loads(json.dumps(a))  # a worse baseline: half the accuracy everywhere
    for n in b["accuracy"]:
        b["accuracy"][n] = {s: v * 0.5 for s, v in b["accuracy"][n].items()}
        b["mean_accuracy"][n] *= 0.5
    b["mean_accuracy_by_severity"] = {s: v * 0.5 for s, v in b["mean_accuracy_by_severity"].items()}
    section = SECTIONS.get("corruptions")([("base", b), ("better", a)], tmp_path / "figs")
    assert section.title == "Common corruptions"
    assert [p.name for p in section.figures] == ["corruptions_per_corruption.png", "corruptions_vs_severity.png"]
    assert all(p.stat().st_size > 1000 for p in section.figures)
    summary, per, per_sev = section.tables
    assert [r[0] for r in summary.rows] == ["base", "better"]
    assert summary.rows[0][5] == "100.0"  # mCE of the baseline against itself
    ce = add_mce(a, b)["mce"]["mce_all"]  # a's errors are 0 (perfect) -> CE 0
    assert summary.rows[1][5] == f"{100 * ce:.1f}" == "0.0"
    assert [r[0] for r in per.rows] == ["snow", "fog", "contrast"]
    assert per.rows[2][2] == f"{100 * a['mean_accuracy']['contrast']:.1f}"
    assert [r[0] for r in per_sev.rows] == [1, 2, 3, 4, 5]
    assert "| run |" in summary.markdown()


def _tamper(path) -> None:
    """Flip one image byte of a .npy file (header and size intact, so only a checksum can tell)."""
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_folder_with_a_manifest_is_verified_unless_told_not_to(tmp_path):
    from ssrobust.errors import DataError

    x, y = toy()
    C.write_corrupted_dataset(x, y.numpy(), tmp_path, names=["contrast"], seed=0, batch_size=24,
                              progress=False)
    suite = SUITES.get("corruptions")
    honest = suite(context(), folder=str(tmp_path))["accuracy"]
    _tamper(tmp_path / "contrast.npy")
    with pytest.raises(DataError, match=r"contrast.npy: sha256 [0-9a-f]+ does not match the manifest"):
        suite(context(), folder=str(tmp_path))
    assert suite(context(), folder=str(tmp_path), verify=False)["accuracy"].keys() == honest.keys()
    (tmp_path / "manifest.json").unlink()  # an official folder has no manifest: nothing to verify
    assert suite(context(), folder=str(tmp_path))["source"] == "folder"


def test_folder_of_another_image_size_is_an_error(tmp_path):
    from ssrobust.errors import DataError

    rng = np.random.default_rng(0)
    np.save(tmp_path / "fog.npy", rng.integers(0, 256, (5 * 24, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.tile(toy()[1].numpy(), 5).astype(np.uint8))
    with pytest.raises(DataError, match=r"fog.npy: images are 32x32, but the model is evaluated on 16x16"):
        SUITES.get("corruptions")(context(), folder=str(tmp_path))


def test_family_means_cover_the_benchmark_corruptions_evaluated():
    names = ["contrast", "pixelate", "frost", "impulse_noise", "speckle_noise"]  # speckle: validation
    rec = SUITES.get("corruptions")(context(), names=names, severities=[2])
    mean = rec["mean_accuracy"]
    assert rec["mean_accuracy_by_family"] == pytest.approx({
        "digital": (mean["contrast"] + mean["pixelate"]) / 2, "weather": mean["frost"],
        "noise": mean["impulse_noise"]})  # no blur evaluated; speckle_noise is not a benchmark one
    assert {C.CORRUPTIONS.get(n).family for n in C.BENCHMARK} == {"noise", "blur", "weather", "digital"}

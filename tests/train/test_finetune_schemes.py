"""AdvCL's finetuning schemes from a pretraining run: SLF (standard + freeze=backbone), ALF
(pgd_at + freeze=backbone), AFF (trades, everything trained), and the evaluation suites on them."""

import json

import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.errors import ConfigError
from ssrobust.experiments.run import train_and_evaluate
from ssrobust.train import fit

ATTACK = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 2}
SCHEMES = {
    "slf": ({"name": "standard"}, "backbone"),
    "alf": ({"name": "pgd_at", "options": ATTACK}, "backbone"),
    "aff": ({"name": "trades", "options": dict(ATTACK, beta=6.0)}, "none"),
}


def pretrained(tmp_path, **options):
    """A 1-epoch ACL pretraining run (its classifier head is untrained)."""
    cfg = tiny_run_config(tmp_path, name="pre", epochs=1,
                          strategy={"name": "contrastive", "options": {"mode": "acl", "steps": 1, **options}})
    return fit(make_config(cfg))


def finetune_config(tmp_path, scheme, source, **over):
    strategy, freeze = SCHEMES[scheme]
    return make_config(tiny_run_config(tmp_path, name=f"ft_{scheme}", init_from=str(source),
                                       strategy=strategy, freeze=freeze, **over))


def _backbone(path):
    state = torch.load(path, weights_only=True)["network"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


@pytest.mark.parametrize("scheme", ["slf", "alf", "aff"])
def test_each_scheme_trains_only_what_it_should(tmp_path, scheme):
    source = pretrained(tmp_path)
    before = _backbone(source / "model.pt")
    after = _backbone(fit(finetune_config(tmp_path, scheme, source)) / "model.pt")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"fc.weight", "fc.bias"} <= changed
    if SCHEMES[scheme][1] == "backbone":  # parameters and BatchNorm statistics bit-identical
        assert changed == {"fc.weight", "fc.bias"}
    else:
        convs = [k for k in before if k.endswith(".weight") and before[k].dim() == 4]
        assert convs and all(k in changed for k in convs)


def test_a_dual_bn_backbone_finetunes_from_its_pgd_branch(tmp_path):
    cfg = tiny_run_config(tmp_path, name="encoder", epochs=1,
                          strategy={"name": "contrastive", "options": {"mode": "simclr"}})
    encoder = fit(make_config(cfg))
    source = fit(make_config(tiny_run_config(
        tmp_path, name="pre_dual", epochs=1, strategy={"name": "contrastive", "options": {
            "mode": "advcl", "steps": 1, "dual_bn": True, "pseudo_label_run": str(encoder)}})))
    pre = _backbone(source / "model.pt")
    after = _backbone(fit(finetune_config(tmp_path, "slf", source)) / "model.pt")
    for k, v in after.items():
        if k.startswith("fc."):
            continue
        src = pre.get(k)
        if src is None:  # a BatchNorm tensor: the pgd branch's
            bn, _, leaf = k.rpartition(".")
            src = pre[f"{bn}.bns.pgd.{leaf}"]
        assert torch.equal(v, src), k


def test_the_suites_run_on_a_finetuned_run(tmp_path):
    source = pretrained(tmp_path)
    cfg = finetune_config(tmp_path, "alf", source, eval={
        "suites": ["clean", "adversarial"],
        "options": {"adversarial": {"max_images": 8, "sweep_steps": 2, "gradient_free_images": 0,
                                    "autoattack": False}}})
    res = json.loads((train_and_evaluate(cfg) / "results.json").read_text())
    assert 0.0 <= res["suites"]["clean"]["accuracy"] <= 1.0
    assert res["suites"]["adversarial"] and res["config"]["freeze"] == "backbone"


def test_freeze_must_be_known():
    with pytest.raises(ConfigError, match="freeze must be one of none, backbone, got 'encoder'"):
        make_config({"freeze": "encoder"})

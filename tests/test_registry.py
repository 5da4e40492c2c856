import pytest

from ssrobust.registry import Registry


def test_register_get_and_unknown_lists_known():
    r = Registry("widget")

    @r.register("a")
    def a():
        return 1

    assert r.get("a") is a and "a" in r and r.names() == ["a"]
    with pytest.raises(KeyError, match="unknown widget 'b'; known: a"):
        r.get("b")
    with pytest.raises(ValueError, match="registered twice"):
        r.register("a")(a)


# --------------------------------------------------------------------------- Registry.build

def test_build_constructs_and_wrong_options_raise_one_error_type():
    from ssrobust.errors import ComponentError, ConfigError

    r = Registry("widget")

    @r.register("pair")
    def pair(a, b=2):
        return (a, b)

    assert r.build("pair", 1, b=3) == (1, 3)
    with pytest.raises(ComponentError, match=r"^widget 'pair': .*unexpected keyword argument 'c'") as e:
        r.build("pair", 1, c=3)
    assert isinstance(e.value, (TypeError, ConfigError))  # the types callers caught before
    with pytest.raises(ComponentError, match="^unknown widget 'nope'; known: pair$") as e:
        r.build("nope")
    assert isinstance(e.value, KeyError) and str(e.value).startswith("unknown")  # not quoted


def _registries():
    """Every component registry of the package, by family."""
    import ssrobust.eval  # noqa: F401  (registers every suite)
    import ssrobust.train  # noqa: F401  (registers every strategy)
    from ssrobust.attacks import ATTACKS, OBJECTIVES
    from ssrobust.contrastive.losses import CONTRASTIVE_LOSSES
    from ssrobust.corruptions import CORRUPTIONS
    from ssrobust.eval import SUITES
    from ssrobust.models import MODELS
    from ssrobust.ood import OOD_SCORES
    from ssrobust.tasks import TASKS
    from ssrobust.train import STRATEGIES
    from ssrobust.weighting.base import WEIGHTINGS

    return [MODELS, TASKS, ATTACKS, OBJECTIVES, CORRUPTIONS, OOD_SCORES, SUITES, STRATEGIES,
            WEIGHTINGS, CONTRASTIVE_LOSSES]


def test_every_registry_names_the_known_components_for_an_unknown_one():
    from ssrobust.errors import ComponentError

    for registry in _registries():
        assert len(registry) > 0, registry.family
        with pytest.raises(ComponentError, match=f"unknown {registry.family} 'no_such'; known: "
                                                 f"{', '.join(registry.names())}$"):
            registry.build("no_such")


@pytest.mark.parametrize("family", ["OOD score", "attack", "training strategy", "contrastive loss",
                                    "attack objective"])
def test_every_component_of_a_family_builds_with_defaults_and_rejects_an_unknown_option(family):
    from ssrobust.errors import ComponentError

    import inspect

    registry = next(r for r in _registries() if r.family == family)
    for name in registry.names():
        params = inspect.signature(registry.get(name)).parameters.values()
        bare = all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
        if bare and family != "training strategy":  # strategies may need data (`one_class_oe`: outliers)
            assert registry.build(name) is not None
        with pytest.raises(ComponentError, match=f"{family} '{name}': "):
            registry.build(name, no_such_option=1)


@pytest.mark.parametrize("name", sorted(__import__("ssrobust.ood", fromlist=["OOD_SCORES"]).OOD_SCORES.names()))
def test_every_ood_score_runs_on_a_tiny_input(name):
    """Each score maps a tiny model's outputs on 5 images to 5 finite anomaly scores."""
    import numpy as np
    import torch

    from ssrobust.models import create_model
    from ssrobust.ood import build_score, score_images
    from ssrobust.tasks import build_task

    torch.manual_seed(0)
    model = create_model("tiny", 3, width=8).eval()
    tasks = {t: build_task(t, model.num_features).eval() for t in ("rotation", "rotation_translation")}
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    out = score_images(model, images, tasks, {name: build_score(name)}, batch_size=4)
    assert out[name].shape == (5,) and np.isfinite(out[name]).all()

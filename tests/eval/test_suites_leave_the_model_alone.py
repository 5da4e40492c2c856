"""No evaluation suite adapts the model to the test set: the model's and the task heads'
``state_dict`` (weights *and* BatchNorm running statistics and counters) are bit-identical before
and after every suite in the ``SUITES`` registry, and so are their train/eval flags."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import ssrobust.eval  # noqa: E402,F401  (registers every suite)
from ssrobust.eval.base import SUITES, EvalContext  # noqa: E402
from ssrobust.models import create_model  # noqa: E402
from ssrobust.tasks import build_task  # noqa: E402

_ADVERSARIAL = dict(max_images=8, pgd20_steps=2, pgd100_steps=3, sweep_linf=[0.0, 8 / 255],
                    sweep_l2=[0.5], sweep_steps=2, gradient_free_images=4, spsa_steps=2,
                    spsa_samples=2, autoattack=False, square_queries=10)
# Small options per registered suite; a new suite must add its own here to be covered.
SMALL = {
    "clean": {},
    "corruptions": {"max_images": 8, "names": ["gaussian_noise", "frost"], "severities": [1]},
    "adversarial": _ADVERSARIAL,
    "adversarial[bn_mode=train]": {**_ADVERSARIAL, "bn_mode": "train"},
    "ood": {"max_images": 8},
}
CASES = [k for k in SMALL if k.split("[")[0] in SUITES.names()]


def test_every_registered_suite_is_covered():
    assert set(SUITES.names()) <= {k.split("[")[0] for k in SMALL}


def _context() -> EvalContext:
    torch.manual_seed(0)
    model = create_model("tiny", 10, width=8)
    tasks = {"rotation": build_task("rotation", model.num_features)}
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 32, 32, 3), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (12,), generator=g)
    # Running statistics that differ from any test batch's, so adapting them would show.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.3)
            m.running_var.fill_(2.0)
    model.train()  # the suites must switch to eval mode themselves and switch back
    return EvalContext(model=model, images=images, labels=labels, tasks=tasks, batch_size=4,
                       class_names=[str(i) for i in range(10)], progress=False,
                       train_images=images, train_labels=labels)


def _snapshot(ctx: EvalContext) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v.clone() for k, v in ctx.model.state_dict().items()}
    for name, task in ctx.tasks.items():
        state.update({f"{name}.{k}": v.clone() for k, v in task.state_dict().items()})
    return state


class CountingLinear(torch.nn.Module):
    """A linear model with a buffer that every train-mode forward increments (like spectral
    norm's power iteration): not a normalization layer, still state an attack must not change."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 10)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        return self.fc(x.flatten(1))


def test_train_mode_attacks_leave_any_buffer_alone():
    model = CountingLinear()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 8, 8, 3), generator=g, dtype=torch.uint8)
    ctx = EvalContext(model=model, images=images, labels=torch.randint(0, 10, (8,), generator=g),
                      class_names=[str(i) for i in range(10)], batch_size=4, progress=False)
    SUITES.get("adversarial")(ctx, **{**_ADVERSARIAL, "bn_mode": "train"})
    assert int(model.calls) == 0


@pytest.mark.parametrize("case", CASES)
def test_suite_leaves_the_state_bit_identical(case: str):
    ctx = _context()
    before = _snapshot(ctx)
    flags = [m.training for m in ctx.model.modules()]
    SUITES.get(case.split("[")[0])(ctx, **SMALL[case])
    after = _snapshot(ctx)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{case} changed {changed}"
    assert [m.training for m in ctx.model.modules()] == flags

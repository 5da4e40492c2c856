"""Deprecated package (kept for one release): renamed :mod:`ssrobust.label_noise` so it is not
confused with pixel noise. ``import ssrobust.noise`` (and its submodules ``matrices``,
``corrupt``, ``correction``, ``cifar100``, ``sweep``) still work, with a DeprecationWarning; the
sweep runner ``ssrobust.noise.pipeline`` is now :mod:`ssrobust.experiments.label_noise`."""

from __future__ import annotations

import sys
import warnings

from .. import label_noise as _label_noise
from ..label_noise import *  # noqa: F401,F403  (the old names, unchanged)
from ..label_noise import __all__  # noqa: F401
from ..label_noise import cifar100, correction, corrupt, matrices, sweep

warnings.warn("ssrobust.noise is deprecated and will be removed in the next release; use "
              "ssrobust.label_noise", DeprecationWarning, stacklevel=2)

for _module in (cifar100, correction, corrupt, matrices, sweep):  # ssrobust.noise.<module> imports
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
del _module, _label_noise

"""Label noise: corruption matrices, noisy-label sampling with a trusted subset, loss corrections
(GLC, forward correction) and strength sweeps (Hendrycks et al. 2019, §3.3)."""

from .cifar100 import COARSE_NAMES, COARSE_OF_FINE, FINE_NAMES, SUPERCLASS_MEMBERS
from .correction import (
    LABEL_LOSSES,
    ForwardCorrection,
    GoldLossCorrection,
    NoCorrection,
    corrected_nll,
    estimate_corruption_matrix,
    estimate_forward_matrix,
    forward_corrected_loss,
    glc_loss,
)
from .corrupt import (
    NoisyLabels,
    corrupt_labels,
    make_noisy_dataset,
    realized_noise_rate,
    split_trusted,
)
from .matrices import (
    LABEL_CORRUPTIONS,
    corruption_matrix,
    expected_noise_rate,
    flip_matrix,
    hierarchical_matrix,
    uniform_matrix,
    validate_matrix,
)
from .sweep import MeanError, mean_error_table, strengths

__all__ = [
    "COARSE_NAMES", "COARSE_OF_FINE", "FINE_NAMES", "SUPERCLASS_MEMBERS",
    "LABEL_LOSSES", "ForwardCorrection", "GoldLossCorrection", "NoCorrection", "corrected_nll",
    "estimate_corruption_matrix", "estimate_forward_matrix", "forward_corrected_loss", "glc_loss",
    "NoisyLabels", "corrupt_labels", "make_noisy_dataset", "realized_noise_rate", "split_trusted",
    "LABEL_CORRUPTIONS", "corruption_matrix", "expected_noise_rate", "flip_matrix",
    "hierarchical_matrix", "uniform_matrix", "validate_matrix",
    "MeanError", "mean_error_table", "strengths",
]

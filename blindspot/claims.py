"""The theory claims (P1-P8, P10-P13) of ``derivations/THEORY.md``, in the order ``verify`` runs them.

Each claim lives in its own module ``claim_p<k>_*``: evidence lines, each computing its measurement by
a route that shares no code with the other lines beyond the model's definition (the ``measure``
docstring of each module names them), and a negative control, one line repeated with a hypothesis
broken. Every line is a function of a small ``Settings`` object and a seed, so it can be run, and
made to fail, on its own.
"""

from blindspot import (
    claim_p1_softmax,
    claim_p2_column_mass,
    claim_p3_circulant,
    claim_p4_blind_subspace,
    claim_p5_positional,
    claim_p6_reconstruction,
    claim_p7_curvature,
    claim_p8_parameter_alignment,
    claim_p10_random_init,
    claim_p11_mlp_order,
    claim_p12_scaling,
    claim_p13_parameter_space,
)

MODULES = (
    claim_p1_softmax,
    claim_p2_column_mass,
    claim_p3_circulant,
    claim_p4_blind_subspace,
    claim_p5_positional,
    claim_p6_reconstruction,
    claim_p7_curvature,
    claim_p8_parameter_alignment,
    claim_p10_random_init,
    claim_p11_mlp_order,
    claim_p12_scaling,
    claim_p13_parameter_space,
)
"""One module per claim: ``CLAIM``, ``LINES``, ``control``, ``Settings``, ``DEFAULT`` and ``FULL``."""

CLAIMS = tuple(module.CLAIM for module in MODULES)

"""Bad input to the public Python API is refused with a one-line error naming the argument, never answered.

Each case is (a call on the good objects of ``good()``, the expected exception, a substring naming the
argument and what is allowed). The classes of defect: non-finite stacks, tolerances, parameters and
directions (a NaN reads as rank 0, "blind"); the MASK id as a data token or target; parameters that
do not fit their config; per-sequence functions and traced calls skipping checks; absurd sizes, bad
keys, dtypes, types and option names.
"""

import functools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import (
    curvature,
    data,
    directions,
    fast_paths,
    jacobian,
    model,
    objectives,
    pushforward,
    subspaces,
    taylor,
    training,
)
from blindspot.config import ModelConfig
from blindspot.positional import positional_encoding, sinusoidal
from blindspot.proximity import proximity_index
from blindspot.tolerances import rank_tolerance

CONFIG = ModelConfig(n=6, d=4, vocab=3, classes=2, mlp=5)
NAN = float("nan")


@functools.cache
def good():
    """Valid objects for CONFIG: parameters at W = 0, a batch of 4 sequences, finite stacks and bases."""
    keys = jax.random.split(jax.random.key(0), 4)
    params = model.init(keys[0], CONFIG)
    tokens = data.iid_tokens(keys[1], 4, CONFIG.n, CONFIG.vocab)
    labels = jax.random.randint(keys[2], (4,), 0, CONFIG.classes, jnp.int32)
    masks = data.sample_masks(keys[3], 4, CONFIG.n, 0.4)
    stack = jax.random.normal(keys[1], (4, 9), jnp.float64)
    basis = directions.toeplitz(3)  # orthonormal (5, 3, 3)
    return SimpleNamespace(
        params=params,
        tokens=tokens,
        labels=labels,
        masks=masks,
        x=tokens[0],
        s=jnp.zeros((CONFIG.n, CONFIG.n), jnp.float64),
        stack=stack,
        span=subspaces.span(stack),
        q=basis.reshape(5, 9),
        basis=basis,
        zero3=jnp.zeros((3, 3), jnp.float64),
        f=lambda y: jnp.sum(jnp.sin(y)),
        key=jax.random.key(5),
    )


def with_nan(array, index=0):
    """A copy of ``array`` with one NaN."""
    return jnp.asarray(array).ravel().at[index].set(NAN).reshape(jnp.shape(array))


def other_params(**changes):
    """Parameters drawn for CONFIG with ``changes``: valid for their own config, not for CONFIG."""
    return model.init(jax.random.key(1), ModelConfig(**{**{"n": 6, "d": 4, "vocab": 3, "mlp": 5}, **changes}))


def nan_params(field):
    g = good()
    return g.params._replace(**{field: with_nan(getattr(g.params, field))})


CASES = {
    # Non-finite stacks, tolerances and parameters: a NaN must never read as rank 0 ("blind").
    "span NaN stack": (lambda g: subspaces.span(with_nan(g.stack)), "stack must be finite"),
    "span inf stack": (lambda g: subspaces.span(g.stack.at[1, 2].set(jnp.inf)), "stack must be finite"),
    "span size below N": (lambda g: subspaces.span(g.stack, size=3), "size must be an integer >= 9"),
    "numerical_rank NaN": (lambda g: subspaces.numerical_rank(with_nan(g.stack)), "matrix must be finite"),
    "numerical_rank NaN scale": (
        lambda g: subspaces.numerical_rank(g.stack, scale=NAN),
        "scale must be a real number in [0.0, inf)",
    ),
    "numerical_rank inf scale": (
        lambda g: subspaces.numerical_rank(g.stack, scale=float("inf")),
        "scale must be a real number in [0.0, inf)",
    ),
    "rank_tolerance NaN": (
        lambda g: rank_tolerance(NAN, (3, 3), jnp.float64),
        "largest_singular_value must be a real number in (-inf, inf)",
    ),
    "span_from_gram NaN": (lambda g: subspaces.span_from_gram(with_nan(g.stack @ g.stack.T), 9), "gram must be finite"),
    "span_from_gram not symmetric": (
        lambda g: subspaces.span_from_gram(g.stack @ g.stack.T + jnp.triu(jnp.ones((4, 4)), 1), 9),
        "gram must be symmetric",
    ),
    "null_space NaN": (lambda g: subspaces.null_space(with_nan(g.stack)), "stack must be finite"),
    "null_space max_size": (lambda g: subspaces.null_space(g.stack, max_size=0), "max_size must be an integer >= 1"),
    "visible_fraction NaN": (
        lambda g: subspaces.visible_fraction(g.span, with_nan(jnp.ones((4, 2)))),
        "projections must be finite",
    ),
    "visible_fraction not a Span": (
        lambda g: subspaces.visible_fraction((4, None), jnp.ones((4, 2))),
        "span_ must be a Span",
    ),
    "principal_angles NaN": (lambda g: subspaces.principal_angles(with_nan(g.q), g.q), "q1 must be finite"),
    "principal_angles not orthonormal": (
        lambda g: subspaces.principal_angles(g.q, 2.0 * g.q[:2]),
        "q2 must have orthonormal rows",
    ),
    "subspace_visible_fraction widths": (
        lambda g: subspaces.subspace_visible_fraction(g.q, jnp.eye(4, 8, dtype=jnp.float64)),
        "q_f must have shape (*, 9)",
    ),
    "expected_alignment NaN": (
        lambda g: subspaces.expected_alignment(with_nan(g.stack), g.q),
        "gradients must be finite",
    ),
    "expected_alignment_from_projections NaN norm": (
        lambda g: subspaces.expected_alignment_from_projections(jnp.ones((4, 2)), NAN),
        "mean_norm must be a real number",
    ),
    "sample_ranks inf": (
        lambda g: subspaces.sample_ranks(g.stack.reshape(4, 3, 3).at[0, 0, 0].set(jnp.inf)),
        "matrices must be finite",
    ),
    "hvp NaN point": (lambda g: curvature.hvp(g.f, with_nan(g.zero3), g.zero3), "x must be finite"),
    "hvp NaN direction": (lambda g: curvature.hvp(g.f, g.zero3, with_nan(g.zero3)), "v must be finite"),
    "restricted_hessian inf basis": (
        lambda g: curvature.restricted_hessian(g.f, g.zero3, g.basis.at[0, 0, 0].set(jnp.inf)),
        "basis must be finite",
    ),
    "gauss_newton_split NaN basis": (
        lambda g: curvature.gauss_newton_split(jnp.sin, jnp.sum, g.zero3, with_nan(g.basis)),
        "basis must be finite",
    ),
    "gauss_newton_split outputs not callable": (
        lambda g: curvature.gauss_newton_split("logits", jnp.sum, g.zero3, g.basis),
        "outputs must be a callable",
    ),
    "dense_hessian NaN": (lambda g: curvature.dense_hessian(g.f, with_nan(g.zero3)), "x must be finite"),
    "taylor NaN direction": (
        lambda g: taylor.taylor_coefficients(g.f, g.zero3, with_nan(g.zero3), 2),
        "direction must be finite",
    ),
    "taylor nested NaN point": (
        lambda g: taylor.taylor_coefficients_nested_jvp(g.f, with_nan(g.zero3), g.zero3, 2),
        "x must be finite",
    ),
    "classification_loss NaN params": (
        lambda g: objectives.classification_loss(nan_params("value"), CONFIG, g.tokens, g.labels),
        "params.value must be finite",
    ),
    "score_gradients NaN params": (
        lambda g: jacobian.score_gradients(nan_params("positional"), CONFIG, "reconstruction", g.tokens, g.masks),
        "params.positional must be finite",
    ),
    "features_at_scores NaN scores": (
        lambda g: model.features_at_scores(g.params, CONFIG, g.x, with_nan(g.s)),
        "s must be finite",
    ),
    # The MASK id (= vocab) is an input symbol introduced by masking, never a data token or target.
    "classification_loss MASK token": (
        lambda g: objectives.classification_loss(g.params, CONFIG, g.tokens.at[0, 0].set(3), g.labels),
        "tokens must have entries in [0, 2] (data ids; 3 is MASK)",
    ),
    "reconstruction_loss MASK target": (
        lambda g: objectives.reconstruction_loss(g.params, CONFIG, g.tokens.at[1, 2].set(3), g.masks),
        "tokens must have entries in [0, 2]",
    ),
    "reconstruction_loss_at_scores MASK target": (
        lambda g: objectives.reconstruction_loss_at_scores(g.params, CONFIG, g.x.at[0].set(3), g.masks[0], g.s),
        "tokens must have entries in [0, 2]",
    ),
    "score_gradients MASK token": (
        lambda g: jacobian.score_gradients(g.params, CONFIG, "reconstruction", g.tokens.at[3, 5].set(3), g.masks),
        "tokens must have entries in [0, 2]",
    ),
    "mask_tokens MASK token": (
        lambda g: model.mask_tokens(CONFIG, g.x.at[0].set(3), g.masks[0]),
        "tokens must have entries in [0, 2]",
    ),
    "attention_maps MASK token": (
        lambda g: training.attention_maps(g.params, CONFIG, g.tokens.at[0, 0].set(3)),
        "tokens must have entries in [0, 2]",
    ),
    "embed id past MASK": (lambda g: model.embed(g.params, g.x.at[0].set(4)), "tokens must have entries in [0, 3]"),
    # Parameters must fit the config they are used with.
    "vocabulary mismatch": (
        lambda g: objectives.classification_loss(other_params(vocab=5), CONFIG, g.tokens, g.labels),
        "params.token_embedding must have shape (4, 4)",
    ),
    "width mismatch": (
        lambda g: jacobian.score_gradients(other_params(d=8), CONFIG, "classification", g.tokens, g.labels),
        "params.token_embedding must have shape (4, 4)",
    ),
    "factored query-key for a free W": (
        lambda g: model.scores(other_params(qk_rank=2), CONFIG, g.x),
        "params.query_key must have shape (4, 4)",
    ),
    "missing MLP": (
        lambda g: fast_paths.uniform_score_factors(other_params(mlp=0), CONFIG, "classification", g.tokens, g.labels),
        "params.mlp must have",
    ),
    "length mismatch": (
        lambda g: model.features_at_scores(other_params(n=7), CONFIG, g.x, g.s),
        "params.positional must have shape (6, 4)",
    ),
    "params not a Params": (
        lambda g: objectives.accuracy(g.params._asdict(), CONFIG, g.tokens, g.labels),
        "params must be a Params",
    ),
    # Per-sequence functions validate too, and traced calls still check shapes and dtypes.
    "scores short sequence": (lambda g: model.scores(g.params, CONFIG, g.x[:5]), "tokens must have shape (6,)"),
    "embed float tokens": (
        lambda g: model.embed(g.params, g.x.astype(jnp.float64)),
        "tokens must be an integer array",
    ),
    "label out of range": (
        lambda g: objectives.classification_loss_at_scores(g.params, CONFIG, g.x, 2, g.s),
        "label must have entries in [0, 1]",
    ),
    "float label": (
        lambda g: objectives.classification_loss_at_scores(g.params, CONFIG, g.x, 1.0, g.s),
        "label must be an integer array",
    ),
    "empty mask": (
        lambda g: objectives.reconstruction_loss_at_scores(g.params, CONFIG, g.x, jnp.zeros(6, bool), g.s),
        "mask must mask at least one position",
    ),
    "integer mask": (
        lambda g: objectives.reconstruction_loss_at_features(
            g.params, CONFIG, g.x, g.masks[0].astype(jnp.int32), jnp.zeros((6, 4))
        ),
        "mask must be a boolean array",
    ),
    "pool wrong width": (lambda g: model.pool(CONFIG, jnp.zeros((6, 3))), "features must have shape (*, 4)"),
    "float labels batch": (
        lambda g: fast_paths.classification_column_factors(g.params, CONFIG, g.tokens, g.labels.astype(jnp.float64)),
        "labels must be an integer array",
    ),
    "scores shape under jit": (
        lambda g: jax.jit(lambda s: objectives.classification_loss_at_scores(g.params, CONFIG, g.x, 0, s))(
            jnp.zeros((5, 5))
        ),
        "s must have shape (6, 6)",
    ),
    "mask dtype under jit": (
        lambda g: jax.jit(lambda m: objectives.reconstruction_loss_at_scores(g.params, CONFIG, g.x, m, g.s))(
            g.masks[0].astype(jnp.float64)
        ),
        "mask must be a boolean array",
    ),
    "batch of one sequence without batch axis": (
        lambda g: objectives.classification_loss(g.params, CONFIG, g.x, g.labels[0]),
        "tokens must have shape (b, 6)",
    ),
    # Keys, sizes, dtypes.
    "iid_tokens absurd batch": (
        lambda g: data.iid_tokens(g.key, 10**9, 16, 4),
        "batch * n must keep one array within 4 GiB",
    ),
    "sample_masks absurd size": (
        lambda g: data.sample_masks(g.key, 10**6, 10**4, 0.5),
        "batch * n must keep one array within 4 GiB",
    ),
    "iid_tokens seed instead of key": (lambda g: data.iid_tokens(0, 2, 6, 3), "key must be a PRNG key"),
    "init string key": (lambda g: model.init("seed", CONFIG), "key must be a PRNG key"),
    "init integer dtype": (lambda g: model.init(g.key, CONFIG, dtype=jnp.int32), "dtype must be a real floating"),
    "circulant absurd n": (
        lambda g: directions.circulant(2048),
        "n (dense basis of n x n directions) must keep one array within 4 GiB",
    ),
    "toeplitz integer dtype": (lambda g: directions.toeplitz(4, dtype="int32"), "dtype must be a real floating"),
    "positional_encoding absurd size": (
        lambda g: positional_encoding(g.key, 10**6, 10**4, "random"),
        "n * d must keep one array within 4 GiB",
    ),
    "sinusoidal n": (lambda g: sinusoidal(1, 4), "n must be an integer >= 2"),
    "lanczos absurd dim": (
        lambda g: curvature.lanczos_extreme(lambda v: v, 10**9, 10, g.key),
        "num_steps * dim (Krylov basis) must keep one array within 4 GiB",
    ),
    "lanczos integer dtype": (
        lambda g: curvature.lanczos_extreme(lambda v: v, 4, 2, g.key, dtype=jnp.int32),
        "dtype must be a real floating",
    ),
    "empirical_lag_agreement float tokens": (
        lambda g: data.empirical_lag_agreement(g.tokens.astype(jnp.float64)),
        "tokens must be an integer array",
    ),
    "lag_agreement float lag": (lambda g: data.lag_agreement(np.ones(3) / 2, 4, 0.5), "lag must be an integer array"),
    "digits tiny test split": (lambda g: data.digits(test_fraction=0.001), "test_fraction must leave at least 10"),
    # Types and option names.
    "config not a ModelConfig": (
        lambda g: objectives.classification_loss(g.params, {"n": 6}, g.tokens, g.labels),
        "config must be a ModelConfig",
    ),
    "unknown objective": (
        lambda g: jacobian.score_gradients(g.params, CONFIG, "regression", g.tokens, g.labels),
        "objective must be one of {classification, reconstruction}",
    ),
    "train bad keys": (
        lambda g: training.train(
            CONFIG, training.Dataset(g.tokens, g.labels, g.tokens, g.labels), jnp.zeros(3), arm="spt"
        ),
        "keys must be stacked PRNG keys",
    ),
    "train settings not TrainSettings": (
        lambda g: training.train(
            CONFIG,
            training.Dataset(g.tokens, g.labels, g.tokens, g.labels),
            jax.random.split(g.key, 2),
            arm="spt",
            settings={"total_steps": 4},
        ),
        "settings must be a TrainSettings",
    ),
    "query_key_gradients bad factors": (
        lambda g: jacobian.query_key_gradients(g.params, CONFIG, "classification", g.tokens, g.labels, factors=(1, 2)),
        "factors must be ScoreFactors",
    ),
    "proximity_index not row-stochastic": (
        lambda g: proximity_index(2.0 * jnp.eye(5)),
        "attention must be row-stochastic",
    ),
    "pushforward zero direction": (
        lambda g: pushforward.pushforward(jnp.zeros((6, 6)), g.params.positional),
        "direction must be non-zero",
    ),
    "first_step_cosine wrong gradient shape": (
        lambda g: pushforward.first_step_cosine(jnp.ones((3, 3)), g.params.positional),
        "gradient must have shape (4, 4)",
    ),
    "orthonormalize integer stack": (
        lambda g: directions.orthonormalize(jnp.ones((2, 3, 3), jnp.int32)),
        "stack must be a floating array",
    ),
    "statistics NaN": (lambda g: directions.statistics(with_nan(g.basis)), "x must be finite"),
    "factor_statistics NaN": (
        lambda g: directions.factor_statistics(with_nan(jnp.ones((2, 6, 1))), jnp.ones((2, 6, 1))),
        "rows must be finite",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_a_one_line_message_naming_the_argument(name):
    call, expected = CASES[name]
    with pytest.raises((ValueError, TypeError)) as info:
        call(good())
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and " must " in message


def test_enough_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("qk_rank", [None, 2])
@pytest.mark.parametrize("mlp", [0, 3])
def test_init_output_always_fits_its_config(qk_rank, mlp):
    config = ModelConfig(n=5, d=4, vocab=3, mlp=mlp, qk_rank=qk_rank, qk_init="random")
    params = model.init(jax.random.key(0), config)
    model.check_params(params, config)
    model.check_params(model.init(jax.random.key(0), config, dtype=jnp.float32), config)


def test_checks_leave_good_numbers_unchanged():
    """Public entry points give bit-identical results to the same computation written without them."""
    g = good()
    w = g.params.query_key
    h = g.params.token_embedding[g.x] + g.params.positional
    expected = jnp.einsum("nd,de,me->nm", h, w, h) / np.sqrt(CONFIG.d)
    np.testing.assert_array_equal(np.asarray(model.scores(g.params, CONFIG, g.x)), np.asarray(expected))
    loss = objectives.classification_loss(g.params, CONFIG, g.tokens, g.labels)
    jitted = jax.jit(objectives.classification_loss, static_argnums=1)(g.params, CONFIG, g.tokens, g.labels)
    assert float(loss) == float(jitted)
    assert subspaces.span(g.stack).rank == 4

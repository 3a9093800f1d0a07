import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from blindspot import directions, hook, hook_analysis, masks, subspaces, transformer
from blindspot.tolerances import close_tolerance

N = 5
TOL = close_tolerance(np.float64, N * N)
CAUSAL = transformer.TransformerConfig(n=N, d=4, vocab=3, layers=2, heads=2, mlp=6, positions="learned", causal=True)
PAD = CAUSAL.pad_id
TOKENS = jnp.array([[0, 1, 2, 1, PAD], [2, 2, 0, PAD, PAD], [1, 0, 1, 2, 0], [2, 1, 1, 0, 1]])
LABELS = jnp.array([0, 1, 1, 0])
PADDED = np.ones((N, N), bool) & (np.arange(N) < 3)[None, :]  # keys 3, 4 are padding
PATTERNS = {"causal": masks.causal(N), "padded": PADDED, "causal_padded": masks.causal(N) & PADDED}


def _projector(allowed):
    """Dense n^2 x n^2 matrix of Pi_A, written entry by entry from its definition (loops, no vectorisation)."""
    n = allowed.shape[0]
    p = np.zeros((n * n, n * n))
    for i in range(n):
        keys = [j for j in range(n) if allowed[i, j]]
        for j in keys:
            for k in keys:
                p[i * n + j, i * n + k] = (j == k) - 1.0 / len(keys)
    return p


@pytest.mark.parametrize("name", PATTERNS)
def test_project_is_the_orthogonal_projector_onto_the_visible_space(name):
    allowed = PATTERNS[name]
    eye = np.eye(N * N).reshape(N * N, N, N)
    dense = masks.project(eye, allowed).reshape(N * N, N * N).T
    np.testing.assert_allclose(dense, _projector(allowed), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        np.asarray(masks.project(jnp.asarray(eye), allowed)), masks.project(eye, allowed), atol=TOL
    )
    expected_dim = sum(int(allowed[i].sum()) - 1 for i in range(N))
    assert masks.visible_dim(allowed) == expected_dim == round(np.trace(dense))
    if name == "causal":
        assert expected_dim == N * (N - 1) // 2
    for blind in ("gauge", "masked"):
        basis = np.asarray(masks.family(blind, allowed).basis()).reshape(-1, N * N)
        np.testing.assert_allclose(basis @ basis.T, np.eye(basis.shape[0]), atol=TOL)  # orthonormal
        np.testing.assert_allclose(basis @ dense, 0.0, atol=TOL, err_msg=blind)  # invisible: Pi_A kills it
    assert masks.family("gauge", allowed).dim + masks.family("masked", allowed).dim + expected_dim == N * N


def test_under_the_causal_mask_circulants_and_toeplitz_project_onto_one_space():
    circulant, toeplitz = (
        np.asarray(masks.family(name, masks.causal(N)).basis()) for name in ("circulant", "toeplitz")
    )
    assert circulant.shape[0] == toeplitz.shape[0] == N - 1
    overlap = circulant.reshape(N - 1, -1) @ toeplitz.reshape(N - 1, -1).T
    np.testing.assert_allclose(overlap @ overlap.T, np.eye(N - 1), atol=TOL)


def test_masked_fractions_against_dense_principal_angles():
    allowed = PATTERNS["causal"]  # the causal model's pattern below: shared compilations
    rng = np.random.default_rng(0)
    grads = masks.project(rng.normal(size=(4, N, N)), allowed)  # four gradients in V_A
    span = subspaces.span(jnp.asarray(grads.reshape(4, -1)))
    q_g = scipy.linalg.orth(grads.reshape(4, -1).T).T
    projector = _projector(allowed)
    for name in masks.names(allowed):
        family = masks.family(name, allowed)
        if name in ("gauge", "masked"):
            want = 0.0
        else:
            whole = np.asarray(directions.family(name, N, part="whole").basis()).reshape(-1, N * N)
            q_f = scipy.linalg.orth(projector @ whole.T).T
            assert family.dim == q_f.shape[0], name
            want = float(np.sum((q_g @ q_f.T) ** 2)) / q_f.shape[0]
        coordinates = family.coordinates(jnp.asarray(grads))
        got = subspaces.visible_fraction(span, coordinates).fraction
        assert abs(got - want) <= TOL, (name, got, want)


def test_without_masked_entries_the_masked_families_are_the_non_gauge_families():
    everything = np.ones((N, N), bool)
    assert masks.names(everything) == directions.registry_names(N)
    for name in masks.names(everything):
        mine = np.asarray(masks.family(name, everything).basis()).reshape(-1, N * N)
        plain = np.asarray(directions.family(name, N).basis()).reshape(-1, N * N)
        overlap = mine @ plain.T  # orthogonal: the same subspace, so the same fractions and detectability
        np.testing.assert_allclose(overlap @ overlap.T, np.eye(plain.shape[0]), atol=TOL, err_msg=name)
        if plain.shape[0] == 1:  # and the same orientation: the same signed alignment
            assert overlap[0, 0] > 0, name


def test_padded_samples_span_exactly_the_union_visible_space():
    lengths = [2, 3, 5]  # trailing padding, nested allowed sets
    patterns = [masks.causal(N) & (np.arange(N) < length)[None, :] for length in lengths]
    union = np.any(patterns, axis=0)
    eye = np.eye(N * N).reshape(N * N, N, N)
    stacked = np.concatenate([masks.project(eye, a).reshape(N * N, -1) for a in patterns])
    np.testing.assert_allclose(masks.project(stacked.reshape(-1, N, N), union).reshape(-1, N * N), stacked, atol=TOL)
    assert np.linalg.matrix_rank(stacked) == masks.visible_dim(union)


@pytest.mark.parametrize(
    "allowed, message",
    [
        (np.ones((N, N), int), "allowed must be a boolean array"),
        (np.ones((N, N - 1), bool), f"allowed must have shape ({N}, {N})"),
        (np.tril(np.ones((N, N), bool), -1), "allowed must allow at least one key in every row"),
    ],
)
def test_bad_patterns_are_refused(allowed, message):
    with pytest.raises(ValueError) as error:
        masks.project(np.zeros((N, N)), allowed)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_traced_pattern_is_refused():
    with pytest.raises(ValueError, match="allowed must be a concrete boolean array"):
        jax.jit(lambda a: masks.project(jnp.zeros((N, N)), a))(jnp.ones((N, N), bool))


@pytest.fixture(scope="module")
def causal():
    """Two layers of two heads, causal, with trailing padding in two of the four sequences."""
    params = transformer.init(jax.random.key(5), CAUSAL)
    loss, shapes = transformer.hooked_loss(CAUSAL, "classification"), transformer.perturbation_shapes(CAUSAL)
    grads = [hook.score_gradients(loss, params, (TOKENS, LABELS), shapes, layer=layer, chunk=3) for layer in (0, 1)]
    allowed = np.tril(np.ones((N, N), bool))[None] & (np.asarray(TOKENS) != PAD)[:, None, :]  # causal, PAD keys out
    assert np.array_equal(allowed[0], np.asarray(transformer.allowed(CAUSAL, TOKENS[0])))
    return params, loss, shapes, grads, allowed


def test_causal_score_gradients_equal_dense_jacfwd_and_vanish_on_masked_entries(causal):
    params, loss, shapes, grads, allowed = causal

    def dense(sample, p, zeros):
        return jax.jacfwd(lambda delta: loss(p, sample, delta))(zeros)

    reference = jax.jit(jax.vmap(dense, in_axes=(0, None, None)))(
        (TOKENS, LABELS), params, hook.zero_perturbations(shapes)
    )
    for layer in (0, 1):
        scale = float(jnp.max(jnp.abs(reference[layer])))
        assert scale > 0
        np.testing.assert_allclose(grads[layer], reference[layer], rtol=0, atol=TOL * scale, err_msg=f"layer {layer}")
        got = np.asarray(grads[layer])
        assert not np.any(np.where(allowed[:, None], 0.0, got)), "masked entries must get exactly 0"
        row_sums = np.sum(np.where(allowed[:, None], got, 0.0), axis=-1)  # along the masked gauge
        assert np.max(np.abs(row_sums)) <= TOL * scale


def test_the_masked_gauge_and_the_masked_entries_change_no_loss(causal):
    params, hooked, shapes, _, allowed = causal
    loss = jax.jit(hooked)
    rng = np.random.default_rng(7)
    base = tuple(jnp.asarray(rng.normal(size=s)) for s in shapes)  # any point, not only 0
    rows = rng.normal(size=(len(TOKENS), CAUSAL.heads, N, 1))
    junk = 100.0 * rng.normal(size=(len(TOKENS), CAUSAL.heads, N, N))
    shift = jnp.asarray(np.where(allowed[:, None], rows, junk))  # r_i on the allowed keys of row i, anything elsewhere
    for s, sample in enumerate(zip(TOKENS, LABELS)):
        for layer in (0, 1):
            moved = tuple(d + shift[s] if i == layer else d for i, d in enumerate(base))
            before, after = float(loss(params, sample, base)), float(loss(params, sample, moved))
            assert abs(after - before) <= TOL * abs(before), (s, layer)


def test_the_analysis_of_a_causal_model_reads_the_masked_gauge_as_invisible(causal):
    params, loss, shapes, _, allowed = causal
    union = allowed.any(axis=0)
    assert np.array_equal(union, masks.causal(N))
    report = hook_analysis.analyse(loss, params, (TOKENS, LABELS), shapes, allowed=union, chunk=3)
    assert [(e["layer"], e["head"]) for e in report["heads"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for entry in report["heads"]:
        assert entry["visible_dim"] == N * (N - 1) // 2 and entry["span_rank"] <= entry["visible_dim"]
        assert entry["families"]["masked"]["dim"] == N * (N - 1) // 2
        for name in ("gauge", "masked"):
            assert entry["families"][name]["visible_fraction"] <= TOL, (entry["layer"], entry["head"], name)
        assert entry["families"]["proximity"]["visible_fraction"] > 10 * TOL

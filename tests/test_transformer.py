import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import ModelConfig, hook, hook_analysis, init, jacobian, masks, transformer
from blindspot.tolerances import close_tolerance

TOL = close_tolerance(np.float64, 64)
CAUSAL = transformer.TransformerConfig(n=5, d=4, vocab=3, layers=2, heads=2, mlp=6, positions="learned", causal=True)
PAD = CAUSAL.pad_id
TOKENS = jnp.array([[0, 1, 2, 1, PAD], [2, 2, 0, PAD, PAD], [1, 0, 1, 2, 0], [2, 1, 1, 0, 1]])
LABELS = jnp.array([0, 1, 1, 0])


def _from_theory(p, d):
    """Transformer parameters equal to the theory model's: W_Q = W, W_K = I, W_O = I, no norms, an unused PAD row."""
    attention = transformer.Attention(p.query_key[None], jnp.eye(d)[None], p.value[None], jnp.eye(d)[None])
    return transformer.TransformerParams(
        jnp.concatenate([p.token_embedding, jnp.zeros((1, d))]),
        p.positional,
        (transformer.Block(None, attention, None, None),),
        None,
        p.classifier,
        p.reconstructor,
    )


@pytest.mark.parametrize(
    "pooling, objective", [("mean", "classification"), ("mean", "reconstruction"), ("first", "classification")]
)
def test_one_layer_one_head_equals_the_theory_model(pooling, objective):
    n, d, b = 6, 4, 8
    theory = ModelConfig(n=n, d=d, vocab=3, pooling=pooling, residual=True, qk_init="random", qk_init_scale=1.0)
    config = transformer.TransformerConfig(
        n=n, d=d, vocab=3, layers=1, heads=1, mlp=0, pooling=pooling, layer_norm=False
    )
    p = jax.jit(init, static_argnums=1)(jax.random.key(0), theory)
    rng = np.random.default_rng(1)
    tokens = jnp.asarray(rng.integers(0, 3, (b, n)))
    if objective == "classification":
        target = jnp.asarray(rng.integers(0, 2, b))
    else:
        target = jnp.asarray(rng.random((b, n)).argsort(axis=1) < 2)  # two masked positions each
    loss, shapes = transformer.hooked_loss(config, objective), transformer.perturbation_shapes(config)
    got = hook.score_gradients(loss, _from_theory(p, d), (tokens, target), shapes, layer=0, chunk=3)
    want = jacobian.score_gradients(p, theory, objective, tokens, target)
    np.testing.assert_allclose(got[:, 0], want, rtol=0, atol=TOL * float(jnp.max(jnp.abs(want))))


@pytest.fixture(scope="module")
def causal():
    params = transformer.init(jax.random.key(5), CAUSAL)
    loss, shapes = transformer.hooked_loss(CAUSAL, "classification"), transformer.perturbation_shapes(CAUSAL)
    grads = [hook.score_gradients(loss, params, (TOKENS, LABELS), shapes, layer=layer, chunk=3) for layer in (0, 1)]
    return params, loss, shapes, grads


def _allowed_per_sample():
    return np.stack([np.asarray(transformer.allowed(CAUSAL, x)) for x in TOKENS])


def test_per_head_score_gradients_equal_dense_jacfwd_and_vanish_on_masked_entries(causal):
    params, loss, shapes, grads = causal

    def dense(sample, p, zeros):
        return jax.jacfwd(lambda delta: loss(p, sample, delta))(zeros)

    reference = jax.jit(jax.vmap(dense, in_axes=(0, None, None)))(
        (TOKENS, LABELS), params, hook.zero_perturbations(shapes)
    )
    allowed = _allowed_per_sample()[:, None]  # (b, 1, n, n), shared by the heads
    for layer in (0, 1):
        scale = float(jnp.max(jnp.abs(reference[layer])))
        assert scale > 0
        np.testing.assert_allclose(grads[layer], reference[layer], rtol=0, atol=TOL * scale, err_msg=f"layer {layer}")
        assert not np.any(np.where(allowed, 0.0, np.asarray(grads[layer]))), "masked entries must get exactly 0"
        row_sums = np.sum(np.where(allowed, np.asarray(grads[layer]), 0.0), axis=-1)  # the masked gauge
        assert np.max(np.abs(row_sums)) <= TOL * scale


def test_masked_gauge_and_masked_entries_change_no_loss(causal):
    params, hooked, shapes, _ = causal
    loss = jax.jit(hooked)
    keys = jax.random.split(jax.random.key(7), 3)
    base = tuple(jax.random.normal(k, s) for k, s in zip(keys, shapes))
    allowed = _allowed_per_sample()
    for s, sample in enumerate(zip(TOKENS, LABELS)):
        rows = jax.random.normal(jax.random.fold_in(keys[2], s), (CAUSAL.heads, CAUSAL.n, 1))
        junk = jax.random.normal(jax.random.fold_in(keys[2], 100 + s), (CAUSAL.heads, CAUSAL.n, CAUSAL.n))
        shift = jnp.where(allowed[s], rows, 100.0 * junk)  # r_i on the allowed keys, anything on the masked ones
        for layer in (0, 1):
            moved = tuple(d + shift if i == layer else d for i, d in enumerate(base))
            before, after = float(loss(params, sample, base)), float(loss(params, sample, moved))
            assert abs(after - before) <= TOL * abs(before), (s, layer)


def test_causal_analysis_reads_the_masked_gauge_as_invisible_and_matches_the_dense_hessian(causal):
    params, loss, shapes, _ = causal
    union = _allowed_per_sample().any(axis=0)
    report = hook_analysis.analyse(
        loss, params, (TOKENS, LABELS), shapes, allowed=union, chunk=3, curvature_at=(1, 0), taylor_order=0,
        hessian=True,
    )  # fmt: skip
    n = CAUSAL.n
    assert len(report["heads"]) == CAUSAL.layers * CAUSAL.heads
    for entry in report["heads"]:
        assert entry["visible_dim"] == n * (n - 1) // 2 and entry["span_rank"] <= entry["visible_dim"]
        assert entry["families"]["masked"]["dim"] == n * (n - 1) // 2
        for name in ("gauge", "masked"):
            assert entry["families"][name]["visible_fraction"] <= TOL, (entry["layer"], entry["head"], name)
        assert entry["families"]["proximity"]["visible_fraction"] > 10 * TOL

    def mean_loss(d, p):
        zeros = hook.zero_perturbations(shapes)
        moved = (zeros[0], zeros[1].at[0].set(d))
        return jnp.mean(jax.vmap(lambda x, y: loss(p, (x, y), moved))(TOKENS, LABELS))

    dense = jax.jit(jax.hessian(mean_loss))(jnp.zeros((n, n)), params).reshape(n * n, n * n)
    families = hook_analysis.registry(n, allowed=union)
    hessians = report["curvature"]["restricted_hessian"]
    largest = float(jnp.max(jnp.abs(dense)))
    for name, family in families.items():
        q = family.basis().reshape(family.dim, -1)
        want = np.linalg.eigvalsh(np.asarray(q @ dense @ q.T))
        np.testing.assert_allclose(hessians[name]["eigenvalues"], want, rtol=0, atol=TOL * largest, err_msg=name)
    for name in ("gauge", "masked"):
        assert max(map(abs, hessians[name]["eigenvalues"])) <= TOL * largest, name


def test_transformer_trains_by_gradient_descent(causal):
    params = causal[0]
    step = jax.jit(jax.value_and_grad(transformer.classification_loss), static_argnums=1)
    first, grads = step(params, CAUSAL, TOKENS, LABELS)
    used = grads._replace(reconstructor=None)  # the label loss does not read the reconstruction head
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(used)), "every parameter must get a gradient"
    for _ in range(30):
        params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
        value, grads = step(params, CAUSAL, TOKENS, LABELS)
    assert float(value) < 0.5 * float(first)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: transformer.TransformerConfig(d=6, heads=4), "d must be a multiple of heads = 4"),
        (lambda: transformer.TransformerConfig(positions="rotary"), "positions must be one of {sinusoidal, learned}"),
        (lambda: transformer.init(jax.random.key(0), ModelConfig()), "config must be a TransformerConfig"),
    ],
)
def test_bad_configurations_are_refused(call, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        call()


@pytest.mark.parametrize(
    "tokens, target, message",
    [
        (jnp.array([0, 3, 1, 2, 0]), 0, "tokens must not contain MASK = 3"),
        (jnp.array([PAD, 1, 1, 2, 0]), 0, "tokens must leave every query a non-PAD key"),
        (jnp.array([0, 1, 1, 2, 9]), 0, "tokens must have entries in [0, 4]"),
        (jnp.array([0, 1, 1, 2, 0]), 2, "labels must have entries in [0, 1]"),
        (jnp.array([0, 1, 1, 2]), 0, "tokens must have shape (5,)"),
    ],
)
def test_bad_samples_are_refused(causal, tokens, target, message):
    params, loss, shapes, _ = causal
    with pytest.raises(ValueError) as error:
        loss(params, (tokens, jnp.asarray(target)), hook.zero_perturbations(shapes))
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="perturbations must be a tuple of 2 arrays"):
        loss(params, (TOKENS[0], LABELS[0]), hook.zero_perturbations(shapes)[:1])
    with pytest.raises(ValueError, match="params must have the structure and shapes"):
        transformer.check_params(params._replace(final_norm=None), CAUSAL)


def test_the_causal_pattern_is_the_union_of_the_samples():
    assert np.array_equal(_allowed_per_sample().any(axis=0), masks.causal(CAUSAL.n))

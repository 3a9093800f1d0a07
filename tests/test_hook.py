import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import ModelConfig, hook, hook_analysis, hook_theory, init, jacobian, probe
from blindspot.progress import Progress
from blindspot.tolerances import close_tolerance

N, BATCH = 6, 10
KEY = jax.random.key(0)
TOL = close_tolerance(np.float64, N * N)


def _theory(objective):
    """Residual + tanh MLP, every parameter N(0, 1/4) (a generic state); drawn in numpy, so nothing compiles."""
    config = ModelConfig(n=N, d=8, vocab=4, mlp=5, residual=True, qk_init="random", qk_init_scale=1.0)
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda leaf: jnp.asarray(0.5 * rng.normal(size=leaf.shape)), jax.eval_shape(lambda: init(KEY, config))
    )
    tokens = jnp.asarray(rng.integers(0, 4, (BATCH, N)))
    if objective == "classification":
        return config, params, tokens, jnp.asarray(rng.integers(0, 2, BATCH))
    return config, params, tokens, jnp.asarray(rng.random((BATCH, N)).argsort(axis=1) < 2)  # two masked each


def _close(got, want, scale, what):
    if want is None or isinstance(want, int | str):
        assert got == want, what
    else:
        assert abs(got - want) <= TOL * scale, (what, got, want)


@pytest.mark.parametrize("objective", ["classification", "reconstruction"])
def test_theory_model_through_the_hook_equals_its_own_route_and_the_probe(objective):
    config, params, tokens, target = _theory(objective)
    loss, shapes = hook_theory.hooked_loss(config, objective), hook_theory.perturbation_shapes(config)
    grads = hook.score_gradients(
        loss, params, (tokens, target), shapes, layer=0, head=0, chunk=4
    )  # 4 does not divide 10
    want = jacobian.score_gradients(params, config, objective, tokens, target)
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(grads, want, rtol=0, atol=TOL * scale)

    got = hook_analysis.analyse(loss, params, (tokens, target), shapes, chunk=4)
    ref = probe.analyse(
        params,
        config,
        objective,
        tokens,
        target,
        route="dense",
        chunk=N,
        taylor_order=0,
        bands=2,
        hessian=False,
        progress=Progress(probe.PROG, "never"),
    )
    (head,) = got["heads"]
    for key in ("per_sample_rank_max", "span_rank", "blind_dim", "span_saturated"):
        assert head[key] == ref[key], key
    for key in ("rank_tolerance", "largest_singular_value"):
        _close(head[key], ref[key], ref["largest_singular_value"], key)
    for name, entry in ref["families"].items():
        assert head["families"][name]["dim"] == entry["dim"], name
        _close(head["families"][name]["visible_fraction"], entry["visible_fraction"], 1.0, name)
        _close(head["expected_alignment"][name], ref["expected_alignment"][name], 1.0, name)
        for key, value in ref["detectability"][name].items():
            _close(head["detectability"][name][key], value, abs(value or 0.0) + scale**2, (name, key))


def _two_layers(params, sample, perturbations):
    """A small two-layer attention loss: layer 0 has two heads, layer 1 one, scores built from the sample."""
    first = jax.nn.softmax(params["w"] * sample + perturbations[0], axis=-1)  # (2, n, n)
    scores = jnp.einsum("hij,jk->ik", first, sample)[None] * params["v"] + perturbations[1]
    return jnp.sum(jnp.tanh(jax.nn.softmax(scores, axis=-1)[0] @ params["u"]) ** 2)


def test_taylor_coefficients_and_restricted_hessians_of_the_second_head_against_dense_derivatives():
    rng = np.random.default_rng(2)
    params = {"w": jnp.asarray([1.5, -0.7])[:, None, None], "v": jnp.asarray(0.8), "u": jnp.asarray(rng.normal(size=N))}
    batch, shapes = jnp.asarray(rng.normal(size=(BATCH, N, N))), ((2, N, N), (1, N, N))
    families = hook_analysis.registry(N)
    along = hook_analysis.one_dimensional_directions(families)
    curvature = hook_analysis.curvature_report(
        _two_layers, params, batch, shapes, families, layer=0, head=1, order=2, along=along, hessian=True, chunk=4
    )

    def mean_loss(d, p, xs):  # the batch-mean loss with d on layer 0, head 1
        moved = (jnp.zeros((2, N, N)).at[1].set(d), jnp.zeros((1, N, N)))
        return jnp.mean(jax.vmap(lambda x: _two_layers(p, x, moved))(xs))

    def derivatives(d, p, xs):  # value, gradient and (by jacfwd) Hessian of the batch-mean loss, dense
        gradient = jax.grad(mean_loss)(d, p, xs)
        return gradient, (mean_loss(d, p, xs), gradient)

    dense, (value, gradient) = jax.jit(jax.jacfwd(derivatives, has_aux=True))(jnp.zeros((N, N)), params, batch)
    dense = dense.reshape(N * N, N * N)
    largest = float(jnp.max(jnp.abs(dense)))
    for name, family in families.items():
        q = family.basis().reshape(family.dim, -1)
        want = np.linalg.eigvalsh(np.asarray(q @ dense @ q.T))
        got = curvature["restricted_hessian"][name]["eigenvalues"]
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL * largest, err_msg=name)
    gauge = curvature["restricted_hessian"]["gauge"]["eigenvalues"]
    assert max(map(abs, gauge)) <= TOL * largest  # P1: the gauge is flat to every order
    assert set(curvature["taylor"]) == {"band_1", "band_2", "proximity"}
    for name, coefficients in curvature["taylor"].items():  # c0 = f, c1 = <grad f, q>, c2 = q^T H q / 2
        q = along[name].reshape(-1)
        want = [float(value), float(gradient.reshape(-1) @ q), float(q @ dense @ q) / 2]
        np.testing.assert_allclose(coefficients, want, rtol=TOL, atol=TOL * largest, err_msg=name)


@pytest.mark.parametrize("chunk", [3, 10])
def test_batch_mean_streams_chunks_and_a_remainder(chunk):
    xs = jnp.arange(35.0).reshape(7, 5)
    got = jax.jit(lambda x: hook.batch_mean(lambda row: {"a": row, "b": row.sum()}, x, chunk))(xs)
    np.testing.assert_array_equal(got["a"], np.asarray(xs).mean(axis=0))
    assert float(got["b"]) == np.asarray(xs).sum() / 7


def _tiny():
    def loss(params, sample, perturbations):
        return jnp.sum(jax.nn.softmax(params["w"] * sample + perturbations[0][0]) ** 2)

    return loss, {"w": jnp.ones(())}, jnp.ones((3, 4, 4)), ((1, 4, 4),)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(loss=3), "loss must be a callable"),
        (dict(shapes=((1, 4),)), "shapes must be a non-empty tuple of (heads, n, n)"),
        (dict(shapes=((1, 4, 5),)), "shapes must be a non-empty tuple of (heads, n, n)"),
        (dict(shapes=((1, 5, 5),)), "loss(params, sample, perturbations of shapes ((1, 5, 5),)) must run"),
        (dict(params={"w": jnp.asarray(np.nan)}), "params['w'] must be finite"),
        (dict(params={"w": 1.0}), "params must be a pytree of arrays"),
        (dict(batch=(jnp.ones((3, 4, 4)), jnp.ones(2))), "batch must be a pytree of arrays sharing one leading axis"),
        (dict(layer=1), "layer must be an integer in [0, 0]"),
        (dict(chunk=0), "chunk must be an integer >= 1"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(change, message):
    loss, params, batch, shapes = _tiny()
    args = dict(loss=loss, params=params, batch=batch, shapes=shapes, layer=0, chunk=2) | change
    with pytest.raises(ValueError) as error:
        hook.score_gradients(args.pop("loss"), args.pop("params"), args.pop("batch"), args.pop("shapes"), **args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_loss_that_is_not_a_scalar_and_a_bad_head_are_refused():
    loss, params, batch, shapes = _tiny()
    with pytest.raises(ValueError, match="loss must return a real floating scalar"):
        hook.score_gradients(lambda p, s, d: jnp.ones(2), params, batch, shapes, layer=0)
    with pytest.raises(ValueError, match=r"head must be an integer in \[0, 0\]"):
        hook.taylor_coefficients(loss, params, batch, shapes, jnp.ones((4, 4)), layer=0, head=1, order=2)
    with pytest.raises(ValueError, match=r"direction must have shape \(4, 4\)"):
        hook.taylor_coefficients(loss, params, batch, shapes, jnp.ones((3, 3)), layer=0, head=0, order=2)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(layers=0), "layers must be None or a non-empty list of indices"),
        (dict(heads=[1]), "head must be an integer in [0, 0]"),
        (dict(curvature_at=(0,)), "curvature_at must be a (layer, head) pair or None"),
        (dict(curvature_at=(0, 0), taylor_directions=[jnp.ones((4, 4))]), "taylor_directions must be a dict"),
        (dict(allowed=np.ones((3, 3), bool)), "allowed must have shape (4, 4)"),
        (dict(hessian=1), "hessian must be True or False"),
        (dict(bands=-1), "bands must be an integer >= 0"),
    ],
)
def test_bad_analysis_options_are_refused_in_one_line(options, message):
    loss, params, batch, shapes = _tiny()
    with pytest.raises(ValueError) as error:
        hook_analysis.analyse(loss, params, batch, shapes, **options)
    assert message in str(error.value) and "\n" not in str(error.value)

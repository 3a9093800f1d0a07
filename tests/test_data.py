import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from blindspot.data import (
    digits,
    empirical_lag_agreement,
    iid_tokens,
    lag_agreement,
    markov_tokens,
    paired_task,
    sample_masks,
)

# two-sided normal quantile for a 1e-6 false-alarm rate per checked entry
Z = 4.9


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("vocab", "rho"), [(2, 0.5), (5, 0.8), (3, 0.0)])
def test_markov_lag_agreement_matches_monte_carlo(seed, vocab, rho):
    """Every entry of the empirical P(x_i = x_j) lies within Z binomial standard errors of the formula."""
    batch, n = 20000, 12
    tokens = markov_tokens(jax.random.key(seed), batch, n, vocab, rho)
    lags = np.arange(n)[:, None] - np.arange(n)[None, :]
    exact = lag_agreement(lags, vocab, rho)
    estimate = np.asarray(empirical_lag_agreement(tokens))
    bound = Z * np.sqrt(exact * (1 - exact) / batch) + 1e-12
    assert np.all(np.abs(estimate - exact) <= bound)
    # stationarity: uniform marginals at every position
    freq = np.stack([(np.asarray(tokens) == v).mean(axis=0) for v in range(vocab)])
    assert np.all(np.abs(freq - 1 / vocab) <= Z * np.sqrt((1 / vocab) * (1 - 1 / vocab) / batch))


def test_lag_agreement_closed_form_at_simple_points():
    assert lag_agreement(0, 4, 0.3) == 1.0
    assert lag_agreement(5, 4, 0.0) == 0.25
    assert lag_agreement(2, 2, 0.5) == pytest.approx(0.5 + 0.5 * 0.25, rel=1e-15)


def test_iid_tokens_have_no_lag_correlation():
    tokens = iid_tokens(jax.random.key(0), 20000, 6, 4)
    estimate = np.asarray(empirical_lag_agreement(tokens))
    off = estimate[~np.eye(6, dtype=bool)]
    assert np.all(np.abs(off - 0.25) <= Z * np.sqrt(0.25 * 0.75 / 20000))


def _counts(tokens, vocab):
    return np.stack([(tokens == v).sum(axis=1) for v in range(vocab)], axis=1)


def _equal_neighbours(tokens):
    return (tokens == np.roll(tokens, -1, axis=1)).sum(axis=1, keepdims=True)


def test_bag_of_tokens_is_at_chance_on_the_paired_task_but_adjacency_solves_it():
    n, vocab = 16, 4
    x_train, y_train = map(np.asarray, paired_task(jax.random.key(0), 4000, n, vocab))
    x_test, y_test = map(np.asarray, paired_task(jax.random.key(1), 4000, n, vocab))
    bag = LogisticRegression(max_iter=2000).fit(_counts(x_train, vocab), y_train)
    chance_bound = Z * np.sqrt(0.25 / len(y_test))
    assert abs(bag.score(_counts(x_test, vocab), y_test) - 0.5) <= chance_bound
    # the control: one adjacency feature (number of equal cyclic neighbours) separates the classes
    local = LogisticRegression(max_iter=2000).fit(_equal_neighbours(x_train), y_train)
    assert local.score(_equal_neighbours(x_test), y_test) > 0.9


def test_paired_task_keeps_the_multiset_and_labels_are_balanced():
    tokens, labels = map(np.asarray, paired_task(jax.random.key(3), 2000, 8, 3))
    assert np.all(_counts(tokens, 3) % 2 == 0)  # every token appears an even number of times
    assert abs(labels.mean() - 0.5) <= Z * np.sqrt(0.25 / 2000)
    paired = tokens[labels == 1]
    assert np.all(_equal_neighbours(paired) >= 4)


def test_digits_are_the_bundled_data_with_a_fixed_stratified_split():
    data = digits()
    assert data.train_tokens.shape == (1347, 64) and data.test_tokens.shape == (450, 64)
    assert int(data.train_tokens.min()) == 0 and int(data.train_tokens.max()) == 3
    assert set(np.unique(np.asarray(data.test_labels))) == set(range(10))
    again = digits()
    np.testing.assert_array_equal(np.asarray(data.test_tokens), np.asarray(again.test_tokens))
    test_counts = np.bincount(np.asarray(data.test_labels), minlength=10)
    all_counts = test_counts + np.bincount(np.asarray(data.train_labels), minlength=10)
    assert np.all(np.abs(test_counts - 450 / 1797 * all_counts) <= 1)  # stratified


@pytest.mark.parametrize(("n", "rate"), [(10, 0.15), (7, 0.5), (4, 0.01)])
def test_masks_have_exactly_m_positions_and_uniform_marginals(n, rate):
    batch = 20000
    masks = np.asarray(sample_masks(jax.random.key(0), batch, n, rate))
    m = max(1, round(rate * n))
    assert masks.dtype == np.bool_ and np.all(masks.sum(axis=1) == m)
    p = m / n
    assert np.all(np.abs(masks.mean(axis=0) - p) <= Z * np.sqrt(p * (1 - p) / batch))


def test_sources_are_deterministic_for_a_key():
    for draw in (
        lambda k: iid_tokens(k, 3, 5, 4),
        lambda k: markov_tokens(k, 3, 5, 4, 0.5),
        lambda k: paired_task(k, 3, 6, 4)[0],
        lambda k: sample_masks(k, 3, 5, 0.4),
    ):
        np.testing.assert_array_equal(np.asarray(draw(jax.random.key(9))), np.asarray(draw(jax.random.key(9))))
        assert draw(jax.random.key(9)).dtype in (jnp.int32, jnp.bool_)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: iid_tokens(jax.random.key(0), 0, 5, 4), r"batch must be an integer >= 1, got 0"),
        (lambda: iid_tokens(jax.random.key(0), 2, 1, 4), r"n must be an integer >= 2, got 1"),
        (lambda: markov_tokens(jax.random.key(0), 2, 5, 4, 1.0), r"rho must be a real number in \[0.0, 1.0\)"),
        (lambda: markov_tokens(jax.random.key(0), 2, 5, 1, 0.5), r"vocab must be an integer in \[2, 2147483647\]"),
        (lambda: paired_task(jax.random.key(0), 2, 7, 4), r"n must be an even integer >= 4, got 7"),
        (lambda: sample_masks(jax.random.key(0), 2, 5, 1.5), r"rate must be a real number in \(0.0, 1.0\)"),
        (lambda: digits(levels=1), r"levels must be an integer in \[2, 17\], got 1"),
    ],
)
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()

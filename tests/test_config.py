import pytest

from blindspot.config import ModelConfig


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("n", 1, ">= 2"),
        ("n", 3.0, ">= 2"),
        ("d", 0, ">= 1"),
        ("vocab", 1, ">= 2"),
        ("classes", 1, ">= 2"),
        ("positional", "learned", "{sinusoidal, random}"),
        ("centred", 1, "True or False"),
        ("scores", "content", "{content_position, position}"),
        ("pooling", "max", "{mean, last, first}"),
        ("residual", "yes", "True or False"),
        ("mlp", -1, ">= 0"),
        ("mask_rate", 0.0, "(0.0, 1.0)"),
        ("mask_rate", 1.0, "(0.0, 1.0)"),
        ("mask_rate", float("nan"), "(0.0, 1.0)"),
        ("reconstruction", "l1", "{cross_entropy, squared, copy}"),
        ("qk_init", "ones", "{zero, random}"),
        ("qk_init_scale", 0.0, "(0.0, inf)"),
        ("qk_rank", 17, "[1, 16]"),
        ("embedding_scale", 0.0, "(0.0, inf)"),
    ],
)
def test_bad_field_is_refused_with_a_one_line_message(field, value, allowed):
    with pytest.raises(ValueError) as info:
        ModelConfig(**{field: value})
    message = str(info.value)
    assert message.startswith(field + " ")
    assert allowed in message
    assert "\n" not in message


def test_config_is_hashable_and_derives_mask_quantities():
    config = ModelConfig(n=10, vocab=5, mask_rate=0.25)
    assert hash(config) == hash(ModelConfig(n=10, vocab=5, mask_rate=0.25))
    assert config.mask_id == 5
    assert config.masked_count == round(0.25 * 10)
    assert ModelConfig(n=4, mask_rate=0.01).masked_count == 1

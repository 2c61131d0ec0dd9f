"""The one typed config: per-model defaults and what it refuses."""
import pytest

from dedup.config import DedupConfig


def test_config_defaults_per_model():
    assert DedupConfig(inputs=["x"]).validate().model == "sscd"
    r = DedupConfig(inputs=["x"], model="resnet50").validate()
    assert (r.threshold, r.preprocess, r.image_size, r.weights) == (0.90, "center-crop", 224, "imagenet")
    s = DedupConfig(inputs=["x"], model="sscd+multihash").validate()
    assert s.learned_model == "sscd" and s.hash_name == "multihash" and s.weights == "auto"
    assert DedupConfig(inputs=["x"], threshold=0.6).validate().resolved_nn_floor() == pytest.approx(0.3)
    from dedup.config import ConfigError

    with pytest.raises(ConfigError, match="--weights applies"):
        DedupConfig(inputs=["x"], model="multihash", weights="random").validate()
    with pytest.raises(ConfigError, match="--preprocess"):
        DedupConfig(inputs=["x"], preprocess="stretch").validate()

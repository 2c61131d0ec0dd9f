"""The one typed config: per-model defaults and what it refuses."""
import pytest

from dedup.config import ConfigError, DedupConfig


def test_config_defaults_per_model():
    assert DedupConfig(inputs=["x"]).validate().model == "sscd"
    r = DedupConfig(inputs=["x"], model="resnet50").validate()
    assert (r.threshold, r.preprocess, r.image_size, r.weights) == (0.90, "center-crop", 224, "imagenet")
    s = DedupConfig(inputs=["x"], model="sscd+multihash").validate()
    assert s.learned_model == "sscd" and s.hash_name == "multihash" and s.weights == "auto"
    assert DedupConfig(inputs=["x"], threshold=0.6).validate().resolved_nn_floor() == pytest.approx(0.3)

    with pytest.raises(ConfigError, match="--weights applies"):
        DedupConfig(inputs=["x"], model="multihash", weights="random").validate()
    with pytest.raises(ConfigError, match="--preprocess"):
        DedupConfig(inputs=["x"], preprocess="stretch").validate()


def test_auto_search_is_exact_up_to_the_measured_crossover_and_the_memory_cap():
    lite = DedupConfig(inputs=["x"], model="multihash").validate()
    # With Milvus Lite exact was the fastest engine at every size measured: no count limit, only the memory cap.
    assert lite.resolved_exact_below() is None and lite.exact_search(999_999) and lite.exact_search(1_000_000)
    sscd = DedupConfig(inputs=["x"]).validate()  # 512-d float32: 4 GiB is 2,097,152 vectors
    assert sscd.exact_search(2_097_152) and not sscd.exact_search(2_097_153)
    assert "fastest engine measured" in sscd.search_choice(1_000_000) and "Milvus (topk requests of 1024" in sscd.search_choice(3_000_000)
    assert DedupConfig(inputs=["x"], exact_below=1000).validate().search_choice(1000).endswith("Milvus (topk requests of 1024 queries, from the driver below --local-below 20000)")
    server = DedupConfig(inputs=["x"], model="multihash", milvus_uri="http://h:19530").validate()
    assert server.resolved_exact_below() == 100_000 and not server.exact_search(100_000)
    assert "exact in memory" in lite.search_choice(10) and "Milvus" in server.search_choice(200_000)
    big = DedupConfig(inputs=["x"], model="resnet50", exact_below=10**9).validate()  # 2048-d float32
    assert big.exact_search(500_000) and not big.exact_search(600_000)  # 4 GiB of vectors at most
    assert DedupConfig(inputs=["x"], search_engine="milvus").validate().exact_search(10) is False
    assert DedupConfig(inputs=["x"], search_engine="exact").validate().search_choice(10) == "--search-engine exact"


def test_exact_products_are_int8_from_the_measured_crossover():
    cfg = DedupConfig(inputs=["x"]).validate()
    assert cfg.resolved_exact_products(cfg.INT8_FROM - 1) == "float32" and cfg.resolved_exact_products(cfg.INT8_FROM) == "int8"
    assert DedupConfig(inputs=["x"], exact_products="float32").validate().resolved_exact_products(10**6) == "float32"
    assert DedupConfig(inputs=["x"], exact_products="int8").validate().resolved_exact_products(10) == "int8"
    with pytest.raises(ConfigError, match="--exact-products"):
        DedupConfig(inputs=["x"], exact_products="int4").validate()


def test_each_option_with_fixed_values_is_checked_and_offered_from_one_list():
    from dedup.cli import build_parser
    from dedup.config import LITERAL_FIELDS, choices

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    offered = {a.dest: tuple(a.choices) for a in run._actions if a.choices}
    assert len(LITERAL_FIELDS) >= 8
    for name in LITERAL_FIELDS:
        assert offered[name] == choices(name)
        with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be"):
            DedupConfig(inputs=["x"], **{name: "nonsense"}).validate()


def test_every_option_belongs_to_one_section_of_under_20_fields():
    import dataclasses

    from dedup.options import SECTIONS

    names = [f.name for s in SECTIONS for f in dataclasses.fields(s)]
    assert sorted(names) == sorted(f.name for f in dataclasses.fields(DedupConfig)) and len(set(names)) == len(names)
    assert all(len(dataclasses.fields(s)) < 20 for s in SECTIONS), {s.__name__: len(dataclasses.fields(s)) for s in SECTIONS}


def test_the_cli_offers_what_the_config_accepts():
    """Each option typed as a Literal: the flag's choices are the type's values, and other values are refused."""
    from dedup.cli import build_parser
    from dedup.config import LITERAL_FIELDS, choices

    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" run"))
    flags = {a.dest: a for a in run._actions}
    assert {"verify", "index", "preprocess", "search_engine", "store_method"} <= set(LITERAL_FIELDS)
    for name in LITERAL_FIELDS:
        assert tuple(flags[name].choices) == choices(name), name
    with pytest.raises(ConfigError, match="--search-mode must be auto, topk or range"):
        DedupConfig(inputs=["x"], search_mode="knn").validate()


def test_validate_returns_a_resolved_frozen_copy():
    import dataclasses

    given = DedupConfig(inputs=["x"])
    cfg = given.validate()
    assert given.threshold is None and given.verify is None  # the caller's options are left as given
    resolved = ("threshold", "verify", "weights", "preprocess", "image_size", "nn_floor", "search_limit", "search_max_limit",
                "search_batch")
    assert all(getattr(cfg, k) is not None for k in resolved), {k: getattr(cfg, k) for k in resolved}
    assert (cfg.threshold, cfg.verify, cfg.nn_floor, cfg.search_limit) == (0.3, "band", 0.0, 16)
    with pytest.raises(dataclasses.FrozenInstanceError, match="dataclasses.replace"):
        cfg.threshold = 0.5
    again = dataclasses.replace(cfg, milvus_uri="http://h:19530", search_limit=None, search_max_limit=None, search_batch=None)
    assert again.validate().resolved_search_limit() == 512 and cfg.validate() == cfg  # resolving twice changes nothing
    warned = DedupConfig(inputs=["x"], threshold=0.95).validate()
    assert len(warned.warnings) == 1 and warned.validate().warnings == warned.warnings  # and keeps what it said

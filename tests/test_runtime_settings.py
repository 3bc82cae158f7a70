"""runtime/settings.py: Settings validation, unknown names with the closest valid one, params files, and
config/perception.yaml checked against every pipeline's Settings (every key known, every default equal)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from perception_pkg.paths import config_dir
from perception_pkg.pipelines import PIPELINES
from perception_pkg.pipelines.cloud_filter import CloudFilterSettings
from perception_pkg.pipelines.detection import DetectionSettings
from perception_pkg.runtime.settings import (
    ConfigError,
    NodeSettings,
    flatten,
    from_params,
    read_params_file,
    specs,
)

CONFIG = config_dir() / "perception.yaml"


def _equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, float(b)) or (math.isinf(a) and a == b)
    if isinstance(a, tuple):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_config_file_names_every_parameter_with_its_settings_default(name: str) -> None:
    spec = PIPELINES[name]
    given = read_params_file(CONFIG, name)
    params = {s.param: s for s in specs(spec.settings)}
    node_params = {s.param for s in specs(NodeSettings)}
    unknown = set(given) - set(params) - node_params
    assert not unknown, f"{name}: keys in config/perception.yaml that no Settings field declares: {unknown}"
    missing = set(params) - set(given)
    assert not missing, f"{name}: Settings fields not documented in config/perception.yaml: {missing}"
    for key, value in given.items():
        if key in params:
            assert _equal(params[key].default, value), (name, key, params[key].default, value)
    spec.settings_from(given)  # and the file as a whole validates


def test_every_setting_has_a_description_and_a_default_of_its_declared_kind() -> None:
    for spec in [*PIPELINES.values()]:
        for s in specs(spec.settings):
            assert s.description, (spec.name, s.param)
            assert s.kind in (bool, int, float, str, tuple), (spec.name, s.param, s.kind)
    assert [s.param for s in specs(NodeSettings)][:2] == ["input_qos.reliability", "input_qos.depth"]


def test_a_misspelt_parameter_names_itself_and_the_closest_valid_name() -> None:
    with pytest.raises(ConfigError) as exc:
        from_params(DetectionSettings, {"score_treshold": 0.5}, "detection")
    msg = str(exc.value)
    assert "'detection.score_treshold'" in msg and "did you mean 'score_threshold'" in msg
    with pytest.raises(ConfigError, match="valid: "):
        from_params(CloudFilterSettings, {"zzzz": 1}, "cloud_filter")  # nothing close: the list


def test_values_are_type_and_range_checked_with_ints_accepted_for_floats() -> None:
    s = from_params(DetectionSettings, {"score_threshold": 1, "threads": 2}, "detection")
    assert s.score_threshold == 1.0 and isinstance(s.score_threshold, float) and s.threads == 2
    cases = [
        ({"score_threshold": "high"}, r"'detection.score_threshold': expected float, got str 'high'"),
        ({"score_threshold": 1.5}, r"expected <= 1.0, got 1.5"),
        ({"threads": 1.5}, r"expected int"),
        ({"lift_3d": "yes"}, r"expected bool"),
        ({"threads": True}, r"expected int, got True"),
        ({"backend": "cuda"}, r"expected one of \['auto'"),
        ({"score_threshold": float("nan")}, r"NaN"),
    ]
    for params, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            from_params(DetectionSettings, params, "detection")
    with pytest.raises(ConfigError, match="expected 3 values"):
        from_params(CloudFilterSettings, {"box_min": [0.0, 0.0]}, "cloud_filter")
    with pytest.raises(ConfigError, match="range_min < range_max"):  # the filter's own cross-field check
        from_params(CloudFilterSettings, {"range_min": 5.0, "range_max": 2.0}, "cloud_filter")
    box = from_params(CloudFilterSettings, {"box_min": [-1, -2, -3]}, "cloud_filter").box_min
    assert box == (-1.0, -2.0, -3.0)


def test_node_level_parameters_are_known_to_every_pipeline_and_checked() -> None:
    spec = PIPELINES["cloud_filter"]
    assert spec.settings_from({"input_qos.depth": 5, "use_sim_time": False}) == CloudFilterSettings()
    with pytest.raises(ConfigError, match=r"input_qos\.depth': expected >= 1"):
        spec.settings_from({"input_qos.depth": 0})
    with pytest.raises(ConfigError, match=r"did you mean 'input_qos\.reliability'"):
        spec.settings_from({"input_qos.reliabilty": "reliable"})


def test_params_file_sections_wildcard_and_nesting(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters:\n    input_qos: {depth: 3}\n"
        "/cloud_filter:\n  ros__parameters:\n    voxel_size: 0.2\n"
        "pose:\n  ros__parameters:\n    max_people: 4\n"
    )
    assert read_params_file(f, "cloud_filter") == {"input_qos.depth": 3, "voxel_size": 0.2}
    assert read_params_file(f, "pose") == {"input_qos.depth": 3, "max_people": 4}
    assert read_params_file(f, "detection") == {"input_qos.depth": 3}
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("- a\n- b\n", "expected a mapping of node names"),
        ("cloud_filter:\n  voxel_size: 1\n", "needs a 'ros__parameters' mapping"),
        ("cloud_filter: [\n", "ParserError"),
        ("cloud_filter: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
    ],
)
def test_a_params_file_that_is_not_one_is_a_config_error(tmp_path: Path, text: str, pattern: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        read_params_file(f, "cloud_filter")


def test_settings_classes_are_frozen_dataclasses() -> None:
    for spec in PIPELINES.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(spec.settings(), "image_topic", "x")  # noqa: B010

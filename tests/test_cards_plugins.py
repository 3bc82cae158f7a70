"""cards/plugins.py: a card names registered decoders and torch factories only. An import path in a card
imports nothing and runs nothing; third-party code runs only through an entry point an installed package
declares, and only when a card names it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from helpers.models import toy_model

from perception_pkg.cards import CardError, load_card, parse_card
from perception_pkg.cards.plugins import DECODER_GROUP, TORCH_FACTORY_GROUP, plugin_names
from perception_pkg.decoders import build_decoder
from perception_pkg.engines import load_engine

SENTINEL_MODULE = """
from pathlib import Path
Path(__file__).with_name("imported").write_text("yes")  # a side effect at import

from perception_pkg.decoders.image import RawDecoder


class Evil(RawDecoder):
    pass
"""


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module ``sentinel_mod`` (on sys.path) that writes ``imported`` when imported."""
    (tmp_path / "sentinel_mod.py").write_text(SENTINEL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sentinel_mod", raising=False)
    return tmp_path / "imported"


def _card(decoder_type: str) -> dict:
    return {
        "name": "toy",
        "inputs": [{"name": "images", "shape": [1, 3, 16, 16]}],
        "outputs": [{"name": "y", "shape": [1, 3]}],
        "decoder": {"type": decoder_type},
    }


def test_a_decoder_import_path_in_a_card_imports_nothing(sentinel: Path) -> None:
    card = parse_card(_card("sentinel_mod:Evil"))
    with pytest.raises(CardError) as info:
        build_decoder(card)
    assert info.value.field == "decoder.type"
    assert "unknown decoder 'sentinel_mod:Evil' (a card never names an import path)" in str(info.value)
    assert "perception_pkg.decoders" in str(info.value)
    assert not sentinel.exists() and "sentinel_mod" not in sys.modules


def test_a_torch_factory_that_would_run_a_command_runs_nothing(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    marker = tmp_path / "ran"
    torch_section = {"factory": "subprocess:run", "kwargs": {"args": ["touch", str(marker)]}}
    card_path = toy_model(tmp_path / "m", extra={"torch": torch_section})
    card = load_card(card_path, check_decoder=False)
    with pytest.raises(CardError) as info:
        load_engine(card, backend="torch")
    assert info.value.field == "torch.factory" and "unknown torch factory 'subprocess:run'" in str(info.value)
    assert not marker.exists()


def test_registered_torch_factories_resolve_by_name_and_by_their_old_spelling(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from perception_pkg.engines.torch_backend import torch_factory
    from perception_pkg.training.models import TinyCenterNet

    assert torch_factory("tiny_centernet") is TinyCenterNet
    assert torch_factory("perception_pkg.training.models:TinyCenterNet") is TinyCenterNet
    with pytest.raises(CardError, match="a card never names an import path"):
        torch_factory("perception_pkg.training.models:conv_bn")  # in the project, but not registered
    assert isinstance(torch_factory("sim_pose")(num_keypoints=17, width=8), torch.nn.Module)


def _install_plugin(site: Path, group: str, name: str, value: str, module: str, code: str) -> None:
    """A distribution in ``site`` (on sys.path) declaring one entry point, as ``pip install`` leaves it."""
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")


def test_an_installed_entry_point_is_the_opt_in_for_a_third_party_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "from perception_pkg.decoders.image import RawDecoder\n\n\nclass MyRaw(RawDecoder):\n    pass\n"
    _install_plugin(tmp_path, DECODER_GROUP, "my_raw", "my_decoders:MyRaw", "my_decoders", code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_decoders", raising=False)
    assert "my_raw" in plugin_names(DECODER_GROUP)
    assert "my_decoders" not in sys.modules  # listing names imports nothing
    decoder = build_decoder(parse_card(_card("my_raw")))
    assert type(decoder).__name__ == "MyRaw" and "my_decoders" in sys.modules
    with pytest.raises(CardError, match="unknown decoder 'my_decoders:MyRaw'"):
        build_decoder(parse_card(_card("my_decoders:MyRaw")))  # the path itself is still no name


def test_an_installed_entry_point_is_the_opt_in_for_a_third_party_torch_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    import numpy as np

    code = (
        "import torch\n\n\ndef build(scale=1.0):\n"
        "    class Mean(torch.nn.Module):\n"
        "        def forward(self, x):\n"
        "            return x.mean(dim=(2, 3)) * scale\n"
        "    return Mean()\n"
    )
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, TORCH_FACTORY_GROUP, "my_mean", "my_nets:build", "my_nets", code)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "my_nets", raising=False)
    card_path = toy_model(tmp_path / "m", extra={"torch": {"factory": "my_mean", "kwargs": {"scale": 2.0}}})
    data = yaml.safe_load(card_path.read_text())
    assert data["torch"]["factory"] == "my_mean"
    engine = load_engine(load_card(card_path, check_decoder=False), backend="torch")
    x = np.ones((1, 3, 16, 16), np.float32)
    np.testing.assert_allclose(engine.infer({"images": x})["y"], 2.0 * np.ones((1, 3)))

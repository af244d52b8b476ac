"""The embedded default checkpoints: each committed one loads strictly and carries a valid card.

Parametrised over what is committed under ``internal_rl_gym/checkpoints/``, so a checkpoint added
later is covered without editing this file.
"""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from internal_rl_gym.hub import CHECKPOINT_DIR, DEFAULT_CHECKPOINTS, available_defaults

COMMITTED = (
    sorted(p for p in CHECKPOINT_DIR.iterdir() if p.is_dir()) if CHECKPOINT_DIR.is_dir() else []
)


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_every_committed_checkpoint_has_a_card_with_hub_metadata(folder):
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data.get("library_name") and data.get("tags"), f"{folder.name}: card lacks metadata"
    assert "reinforcement-learning" in data["tags"]


@pytest.mark.parametrize("name", available_defaults(), ids=str)
def test_every_available_default_loads(name):
    from internal_rl_gym import load_base_model, load_metacontroller

    kind = DEFAULT_CHECKPOINTS[name].kind
    if kind == "base_model":
        model = load_base_model(name)
        assert model.n_params > 0
    else:
        base = load_base_model(DEFAULT_CHECKPOINTS[name].base_model)
        load_metacontroller(name, base_model=base)


def test_missing_default_gives_a_clear_error():
    from internal_rl_gym.hub import CheckpointError, resolve_checkpoint

    missing = [n for n in DEFAULT_CHECKPOINTS if n not in available_defaults()]
    if not missing:
        pytest.skip("every default checkpoint is committed")
    with pytest.raises(CheckpointError, match="not included"):
        resolve_checkpoint(missing[0])

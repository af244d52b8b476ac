"""Every ``CheckpointError`` of ``internal_rl_gym.hub``: each test reaches one branch and checks
that the message says what went wrong *and* how to fix it.

Hub failures come from a loopback fake Hub (``tests/fake_hub.py``) whose replies a test can
override per repository (``ErrorHub.replies``), so the real ``huggingface_hub`` client meets a
gated repo, a rejected token or a mirror that moved between two downloads. Each test's
docstring names the mutant it kills: usually "the fix left out of the message" (the message
replaced by a bare statement of the failure) or "the check removed" (the load goes on and
fails elsewhere, with another exception or message).
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from internal_rl_gym import hub as hub_module
from internal_rl_gym.hub import (
    CheckpointError,
    check_compatible,
    load_base_model,
    load_metacontroller,
    load_policy_from_hub,
    load_subgoal_controllers,
    save_checkpoint,
)
from internal_rl_gym.models import SubgoalControllers
from tests.fake_hub import FakeHub
from tests.test_hub import tiny_base, tiny_meta


class ErrorHub(FakeHub):
    """The fake Hub, with canned replies per repository (``replies[repo_id] = (status,
    headers, body)``) and repositories whose commit id differs per file and is not a sha
    (``moving``: a Hub-compatible mirror that moved between two downloads)."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.moving: set[str] = set()

    def _lookup(self, repo_id: str, revision: str, filename: str):
        if repo_id in self.replies:
            return self.replies[repo_id]
        status, headers, body = super()._lookup(repo_id, revision, filename)
        if repo_id in self.moving and status == 200:
            headers = {**headers, "X-Repo-Commit": f"snapshot-of-{filename.split('.')[0]}"}
        return status, headers, body


@pytest.fixture(scope="module")
def error_hub(fake_hub):
    """Depends on ``fake_hub`` for its loopback proxy settings."""
    with ErrorHub() as hub:
        yield hub


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny base model (``base``) and a metacontroller trained on it (``meta``)."""
    root = tmp_path_factory.mktemp("saved")
    base = tiny_base(0)
    save_checkpoint(base, root / "base")
    save_checkpoint(tiny_meta(base, "tiny"), root / "meta")
    return root


def at(hub: FakeHub, tmp_path: Path, **kw) -> dict:
    return dict(endpoint=hub.url, cache_dir=tmp_path / "cache", **kw)


def copy_checkpoint(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


# ------------------------------------------------------------------------- resolve_checkpoint


def test_default_of_another_kind_names_its_loader():
    """Branch: an embedded default of the wrong kind. Mutant: the check removed (the base
    model's config then fails as a metacontroller with the generic kind message)."""
    with pytest.raises(
        CheckpointError,
        match=r"'pinpad-transformer' is the default base model, not a metacontroller: load it "
        r"with load_base_model\('pinpad-transformer'\)",
    ):
        load_metacontroller("pinpad-transformer")


def test_default_missing_from_the_installation_says_how_to_get_one(tmp_path, monkeypatch):
    """Branch: an embedded default whose weights are not installed. Mutant: the check removed
    (the load then tries the folder and fails on a missing file)."""
    monkeypatch.setattr(hub_module, "CHECKPOINT_DIR", tmp_path / "empty")
    with pytest.raises(
        CheckpointError,
        match=r"'pinpad-transformer' is not included in this installation yet .*Train one "
        r"with the `internal-rl` pipeline and pass its directory, or load a Hub repo id",
    ):
        load_base_model("pinpad-transformer")


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_directory_missing_a_file_names_the_files_a_checkpoint_needs(saved, tmp_path, missing):
    """Branch: a directory without config.json or model.safetensors. Mutant: the check
    removed (a missing config then reads as bad JSON, missing weights as a corrupt file)."""
    folder = copy_checkpoint(saved / "base", tmp_path / "ckpt")
    (folder / missing).unlink()
    with pytest.raises(
        CheckpointError,
        match=rf"has no {missing}: a checkpoint directory needs config.json and "
        r"model.safetensors \(written by internal_rl_gym.hub.save_checkpoint",
    ):
        load_base_model(folder)


def test_a_file_instead_of_a_directory_asks_for_the_directory(saved):
    """Branch: the path is a file. Mutant: the check removed (the path is then taken for a
    repo id and the message says it is none)."""
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors is a file; pass the checkpoint directory that holds "
        r"config.json and model.safetensors",
    ):
        load_base_model(saved / "base" / "model.safetensors")


def test_a_name_that_is_nothing_lists_what_it_could_be(tmp_path):
    """Branch: not a default, not a directory, not a repo id. Mutant: the check removed (the
    client then rejects the id with its own message)."""
    with pytest.raises(
        CheckpointError,
        match=r"not an embedded default \(ant-metacontroller, .*pinpad-transformer\), not an existing "
        r"directory, and not a Hugging Face repo id of the form 'org/name'",
    ):
        load_base_model(str(tmp_path / "no" / "such" / "dir"))


def test_config_and_weights_from_different_snapshots_ask_for_a_pinned_revision(
    error_hub, saved, tmp_path
):
    """Branch: config.json and model.safetensors land in different snapshot folders (a mirror
    whose commit ids are not shas moved between the two downloads, so the weights could not
    be pinned). Mutant: the check removed (the weights' folder lacks config.json)."""
    error_hub.add_repo("errors/moving", saved / "base")
    error_hub.moving.add("errors/moving")
    with pytest.raises(
        CheckpointError,
        match=r"errors/moving: config.json and model.safetensors resolved to different "
        r"snapshots .*snapshot-of-config and .*snapshot-of-model\); pass revision=<commit sha>",
    ):
        load_base_model("errors/moving", **at(error_hub, tmp_path))


def test_checkpoint_of_another_kind_names_its_loader(saved):
    """Branch: the config is of another kind than the loader's. Mutant: the check removed
    (a base model's config then fails to build a metacontroller)."""
    with pytest.raises(
        CheckpointError,
        match=r"is a base model checkpoint, not a metacontroller: load it with "
        r"internal_rl_gym.hub.load_base_model\(",
    ):
        load_metacontroller(saved / "base")


# ------------------------------------------------------------------------------ download_file


def test_gated_repo_says_request_access_and_log_in(error_hub, tmp_path):
    """Branch: GatedRepoError. Mutant: the gated branch removed (a gated repo then reads as
    one that does not exist)."""
    error_hub.replies["errors/gated"] = (403, {"X-Error-Code": "GatedRepo"}, b"gated")
    with pytest.raises(
        CheckpointError,
        match=r"Hub repository 'errors/gated' at http://127.0.0.1:\d+ is gated: request access "
        r"on its page, then log in \(`hf auth login`\) or pass token=",
    ):
        load_base_model("errors/gated", **at(error_hub, tmp_path))


def test_unknown_repo_says_check_the_id_or_log_in(error_hub, tmp_path):
    """Branch: RepositoryNotFoundError. Mutant: the fix left out of the message."""
    with pytest.raises(
        CheckpointError,
        match=r"'errors/unknown' was not found at http://127.0.0.1:\d+ \(there is no local "
        r"directory 'errors/unknown' either\). Check the id; if the repository is private, log "
        r"in \(`hf auth login`\) or pass token=",
    ):
        load_base_model("errors/unknown", **at(error_hub, tmp_path))


def test_unknown_revision_says_what_a_revision_can_be(error_hub, saved, tmp_path):
    """Branch: RevisionNotFoundError. Mutant: the fix left out of the message."""
    error_hub.add_repo("errors/revisions", saved / "base")
    with pytest.raises(
        CheckpointError,
        match=r"Revision 'v9' does not exist in Hub repository 'errors/revisions'; use a "
        r"branch, a tag or a full 40-character commit sha",
    ):
        load_base_model("errors/revisions", **at(error_hub, tmp_path, revision="v9"))


def test_offline_and_not_cached_says_how_to_get_the_file(error_hub, tmp_path):
    """Branch: LocalEntryNotFoundError while offline. Mutant: the offline branch removed (the
    message then blames the network, which was never asked)."""
    with pytest.raises(
        CheckpointError,
        match=r"downloads are disabled \(HF_HUB_OFFLINE=1 or local_files_only=True\)\. Download "
        r"it once while online .*point cache_dir at a cache that holds it, or pass a local",
    ):
        load_base_model("errors/never", **at(error_hub, tmp_path, local_files_only=True))


def test_hub_that_answers_an_error_page_says_check_the_network(error_hub, tmp_path):
    """Branch: LocalEntryNotFoundError online (the client hides a 5xx/403 behind "cannot
    find the file"). Mutant: the fix left out of the message."""
    error_hub.replies["errors/forbidden"] = (403, {}, b"Forbidden")
    with pytest.raises(
        CheckpointError,
        match=r"the Hub at http://127.0.0.1:\d+ cannot be reached, and the file is not in the "
        r"local Hub cache .* Check the network or proxy settings \(HTTPS_PROXY, NO_PROXY, "
        r"HF_ENDPOINT\), or pass a local checkpoint directory",
    ):
        load_base_model("errors/forbidden", **at(error_hub, tmp_path))


def test_repo_without_weights_says_what_a_checkpoint_needs(error_hub, saved, tmp_path):
    """Branch: EntryNotFoundError (not optional). Mutant: the missing_hint dropped."""
    config = (saved / "base" / "config.json").read_bytes()
    error_hub.add_repo("errors/no-weights", {"config.json": config})
    with pytest.raises(
        CheckpointError,
        match=r"has no file 'model.safetensors'; an internal-rl-gym checkpoint needs "
        r"config.json and model.safetensors\.",
    ):
        load_base_model("errors/no-weights", **at(error_hub, tmp_path))


def test_invalid_repo_id_says_the_form_it_must_have(error_hub, tmp_path):
    """Branch: HFValidationError (the policy loader passes repo ids to the client as given).
    Mutant: the branch removed (the raw HFValidationError escapes)."""
    with pytest.raises(
        CheckpointError,
        match=r"'a/b/c' is not a valid Hub repo id: Repo id must be in the form 'repo_name' or "
        r"'namespace/repo_name'",
    ):
        load_policy_from_hub("a/b/c", trust_remote_code=True, algo="ppo", **at(error_hub, tmp_path))


def test_rejected_token_says_log_in_again(error_hub, tmp_path):
    """Branch: any other HfHubHTTPError (a 401 for a bad token). Mutant: the fix left out of
    the message (it used to end at the client's status line)."""
    headers = {"X-Error-Message": "Invalid credentials in Authorization header"}
    error_hub.replies["errors/bad-token"] = (401, headers, b"Unauthorized")
    with pytest.raises(
        CheckpointError,
        match=r"Downloading config.json of 'errors/bad-token' \(revision 'main'\) from "
        r"http://127.0.0.1:\d+ failed: .*401.*\(Invalid credentials in Authorization header\); "
        r"log in again \(`hf auth login`\) or pass a valid token= argument\.",
    ):
        load_base_model("errors/bad-token", **at(error_hub, tmp_path, token="hf_wrong"))


def test_corrupted_cache_blob_says_delete_it_or_force_download(error_hub, saved, tmp_path):
    """Branch: a cached LFS blob whose sha256 differs from its name. Mutant: the hash check
    removed (a flipped bit in the tensor data loads silently)."""
    error_hub.add_repo("errors/corrupt", saved / "base")
    load_base_model("errors/corrupt", **at(error_hub, tmp_path))
    (blob,) = (tmp_path / "cache" / "models--errors--corrupt" / "blobs").glob("?" * 64)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match=rf"corrupted in the Hub cache \(its sha256 does not match the Hub's\)\. Delete "
        rf".*{blob.name} and load again, or pass force_download=True",
    ):
        load_base_model("errors/corrupt", **at(error_hub, tmp_path))


# ------------------------------------------------------------------------ read_config, loading


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", r"config.json is not readable JSON \(.*\); re-save the checkpoint\."),
        ("[16, 2]", r"config.json must hold a JSON object of constructor arguments\."),
    ],
)
def test_bad_config_json_says_resave(saved, tmp_path, text, message):
    """Branches: config.json that is not JSON, and JSON that is not an object. Mutants: either
    check removed (a JSONDecodeError or an AttributeError escapes)."""
    folder = copy_checkpoint(saved / "base", tmp_path / "ckpt")
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load_base_model(folder)


@pytest.mark.parametrize(
    "config, reason",
    [
        ({"hidden_size": 8, "vocab_size": 3}, r"missing 1 required keyword-only argument"),
        ({"arch": "lstm", "obs_dim": 20, "n_actions": 4}, r"arch must be one of"),
    ],
)
def test_config_for_another_class_says_what_writes_a_loadable_one(tmp_path, config, reason):
    """Branch: config.json that does not build the class (another library's config, or a
    value the class rejects). Mutant: the TypeError/ValueError not caught, or the fix left out
    of the message."""
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")
    unknown_fields = pytest.warns(UserWarning, match="fields this version of BaseModel does not")
    with (
        unknown_fields if "hidden_size" in config else contextlib.nullcontext(),
        pytest.raises(
            CheckpointError,
            match=rf"does not describe a BaseModel: .*{reason}.*\. Pass a checkpoint written by "
            r"BaseModel.save_pretrained or internal_rl_gym.hub.save_checkpoint\.",
        ),
    ):
        load_base_model(folder)


def test_weights_that_are_not_safetensors_say_save_again(saved, tmp_path):
    """Branch: SafetensorError. Mutant: the fix left out of the message."""
    folder = copy_checkpoint(saved / "base", tmp_path / "ckpt")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(
        CheckpointError,
        match=r"is corrupted or not a safetensors file \(.*\)\. Save the checkpoint again; for "
        r"a Hub download, delete its cache entry or pass force_download=True",
    ):
        load_base_model(folder)


@pytest.mark.parametrize(
    "change, reason",
    [({"d_mlp": 64}, r"size mismatch for blocks"), ({"n_layers": 1}, r"Unexpected key\(s\)")],
)
def test_weights_that_do_not_match_the_config_say_loading_is_strict(
    saved, tmp_path, change, reason
):
    """Branch: strict loading's RuntimeError (wider MLPs; fewer layers than the weights hold).
    Mutants: the RuntimeError not caught; ``strict=False`` (the extra layer's weights would be
    dropped silently)."""
    folder = copy_checkpoint(saved / "base", tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(
        CheckpointError,
        match=r"do not match .*config.json \(loading is strict\)\. Restore the config.json these "
        rf"weights were saved with, or save the checkpoint again: (?s:.*){reason}",
    ):
        load_base_model(folder)


def test_subgoal_controllers_without_a_layer_say_record_it(tmp_path):
    """Branch: subgoal controllers with layer=-1. Mutant: the check removed (they would load
    and steer layer -1, which InternalControl rejects much later)."""
    ctrl = SubgoalControllers(16, 4, rank=2, layer=-1)
    save_checkpoint(ctrl, tmp_path / "ctrl")
    with pytest.raises(
        CheckpointError,
        match=r"records no layer for these controllers \(layer=-1\); add the layer they were "
        r"trained at \(`internal-rl probe` records it\)",
    ):
        load_subgoal_controllers(tmp_path / "ctrl")


# -------------------------------------------------------------------------- check_compatible


FIX = (
    r"Load the base model it was trained on \(load_base_model\('tiny'\)\), or train a "
    r"metacontroller for this base model \(`internal-rl discover --base-model \.\.\.`\)\."
)


def test_wider_metacontroller_says_load_its_base_model(saved):
    """Branch: d_model mismatch. Mutant: the width check removed (the fingerprint check then
    fires with another message)."""
    base = load_base_model(saved / "base")
    meta = tiny_meta(base, "tiny", d_model=24)
    with pytest.raises(
        CheckpointError, match=rf"steers a d_model=24 residual stream, but base model .*{FIX}"
    ):
        check_compatible(meta, base)


@pytest.mark.parametrize("layer", [3, -1])
def test_metacontroller_layer_missing_from_the_base_model_says_load_its_base_model(saved, layer):
    """Branch: the controlled layer is not in the base model (2 layers: 0..2 exist). Mutants:
    the range check removed; either bound off by one (layer 0, the embedding, and layer 2, the
    top, must pass)."""
    base = load_base_model(saved / "base")
    meta = tiny_meta(base, "tiny", layer=layer)
    with pytest.raises(
        CheckpointError,
        match=rf"controls layer {layer}, which base model .* \(2 layers\) does not have\. {FIX}",
    ):
        check_compatible(meta, base)
    for exists in (0, 2):
        check_compatible(tiny_meta(base, "tiny", layer=exists), base)


def test_metacontroller_of_another_base_model_says_load_its_base_model(saved):
    """Branch: fingerprint mismatch. Mutant: the fingerprint check removed."""
    meta = load_metacontroller(saved / "meta")
    other = tiny_base(1)
    with pytest.raises(
        CheckpointError,
        match=rf"was trained on base model 'tiny' \(weights sha256 [0-9a-f]{{12}}…\), but the "
        rf"base model given is .*: its controllers would steer the wrong residual stream\. {FIX}",
    ):
        check_compatible(meta, other)
    check_compatible(meta, load_base_model(saved / "base"))


# ------------------------------------------------------------------------------ SB3 policies


def test_untrusted_policy_is_refused_before_any_download(error_hub, tmp_path):
    """Branch: trust_remote_code=False. Mutant: the gate removed (the zip is downloaded and
    unpickled)."""
    n_requests = len(error_hub.requests)
    with pytest.raises(
        CheckpointError,
        match=r"Refusing to load 'errors/ppo-X': a Stable-Baselines3 \.zip contains pickled "
        r"Python objects.*If you trust its author, pass trust_remote_code=True\.",
    ):
        load_policy_from_hub("errors/ppo-X", **at(error_hub, tmp_path))
    assert len(error_hub.requests) == n_requests


@pytest.mark.parametrize(
    "repo, algo", [("errors/mystery-policy", None), ("errors/ppo-Pinpad", "muzero")]
)
def test_unknown_sb3_algorithm_lists_the_known_ones(error_hub, tmp_path, repo, algo):
    """Branch: no algorithm from the filename or algo=. Mutant: the check removed (a KeyError
    escapes)."""
    with pytest.raises(
        CheckpointError,
        match=r"Cannot tell which Stable-Baselines3 algorithm saved '.*\.zip'; pass algo= one "
        r"of a2c, .*ppo, .*recurrent-ppo, .*td3 \(or the class\)\.",
    ):
        load_policy_from_hub(repo, algo=algo, trust_remote_code=True, **at(error_hub, tmp_path))


def _zip_without_sb3_data() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("weights.txt", "not a policy")
    return buf.getvalue()


@pytest.mark.parametrize(
    "body, reason",
    [(b"not a zip", r"wasn't a zip-file"), (_zip_without_sb3_data(), r"No data found")],
)
def test_policy_that_will_not_load_says_download_again_or_check_algo(
    error_hub, tmp_path, body, reason
):
    """Branch: SB3 cannot load the zip (not a zip; a zip without SB3's data). Mutants: the
    except clause removed, or AssertionError not in it (SB3 asserts the data entry exists)."""
    repo = f"errors/ppo-Broken{len(body)}"
    error_hub.add_repo(repo, {f"ppo-Broken{len(body)}.zip": body})
    with pytest.raises(
        CheckpointError,
        match=rf"ppo-Broken\d+\.zip of '{repo}' is not a loadable PPO policy \(.*{reason}.*\); "
        r"download it again with force_download=True, or check algo=\.",
    ):
        load_policy_from_hub(repo, trust_remote_code=True, device="cpu", **at(error_hub, tmp_path))

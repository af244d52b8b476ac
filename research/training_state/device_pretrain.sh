#!/usr/bin/env bash
# Paper-size grid pretraining on a lent GPU (the `device` tool), one call of at most ~9 minutes.
#
# The device machine is bare apart from PyTorch & co.: it lacks gymnasium, and the working tree
# sent to it must stay under 64 MiB (the resumable states in research/training_state/ alone are ~56 MB).
# Here, before the call:
#
#   bash research/training_state/device_pretrain.sh fetch     # gymnasium wheels into .whl/ (git-ignored)
#   KEEP=pinpad-paper bash research/training_state/device_pretrain.sh stash   # `unstash` afterwards
#
# `stash` moves what the device does not need out of the tree (to /tmp/device_stash): the
# training states other than KEEP, benchmarks/results and the embedded checkpoints.
# To continue a committed state, give FROM=research/training_state/<name>: `run` copies its
# train_state.pt, config.json and metrics.jsonl into RUN first (RUN is under the git-ignored
# runs/, which a warm machine keeps for the next call, e.g. a `probe`).
#
# The call (device tool `run`): command "bash research/training_state/device_pretrain.sh run",
# carry [".whl"], timeout_s 600 (FROM=research/training_state/<name> resumes a committed state).
# It trains until BUDGET_S seconds have passed (default 470), checkpointing every 500 steps, and
# puts the run's resumable state under $OUT in 4 files (see export_run; a call brings back at
# most 8 files of at most 16 MiB, 64 MiB in all, so with two runs export the second in a later
# call: EXPORT=0, then `export`). Back here, rebuild the run folder (model/ included) with
#
#   bash research/training_state/device_pretrain.sh unpack <files_at folder>   # -> runs/pinpad-paper
#
# `probe` (chain it: "bash research/training_state/device_pretrain.sh run && bash
# research/training_state/device_pretrain.sh probe", with BUDGET_S lowered to leave it ~3 minutes) trains
# the paper's ground-truth controllers at PROBE_LAYERS (default 3 = L/2) on the run's last
# checkpoint and returns probe.tar (probe.json and the controllers; session 13 on an H200:
# ~65 s per layer at 3200 steps, after ~30 s of probes and free play). It can also be a second
# call on the warm machine, which still holds RUN.
#
# Two runs can share the GPU (a grid-paper step is probably bound by host overhead; not
# profiled, but session 13 ran 26-30 steps/s at batch 1024, about as many as grid-cpu at batch
# 256 in session 12): start each `run` in the background with its own RUN, OUT (e.g. $OUT/a and
# $OUT/b) and WORKERS=6, then `wait`. pretrain logs perf/data_fraction to tell.
#
# Settings (environment): ENCODER (default grid_egocentric), STEPS (256000), BATCH (1024),
# LR (3e-4), WORKERS (12), POOL (65536), EVAL_EVERY (4000), CKPT_EVERY (500), PRESET (grid-paper),
# BUDGET_S (470), THREADS (4), RUN (runs/pinpad-paper), PYTHON (python3), DECAY (anneal the lr
# to 0 over the last DECAY of the STEPS), N_LAYERS and D_MODEL
# (override the preset's), FROM (a committed state to continue), EXPORT (1; 0: `run` leaves
# the state on the machine for a later `export`), OUT ($OUT of the call); for probe: PROBE_LAYERS
# (3), PROBE_STEPS (3200), PROBE_BATCH (512), PROBE_BUDGET_S (240).
# To continue a CPU run on the GPU, carry a slim copy of its folder (train_state.pt, config.json,
# metrics.jsonl) as RUN and give its PRESET and ENCODER: a resume rebuilds the model from them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/pinpad-paper}
PYTHON=${PYTHON:-python3}

setup_python() {
    if ! "$PYTHON" -c "import gymnasium" 2>/dev/null; then
        # one folder per process: concurrent runs must not install into the same one
        site=/tmp/site.$$
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$site" .whl/*.whl
        export PYTHONPATH=$site
    fi
    export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 MUJOCO_GL=egl
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
}

# RUN's resumable state into OUT in at most 4 files: meta.tar (config.json, metrics.jsonl,
# model_config.json) and train_state.pt in parts of 15.5 MiB (a file over 16 MiB does not
# come back; a paper-size state, ~45 MB, takes 3)
export_run() {
    out=${OUT:-/tmp/device_out}
    mkdir -p "$out"
    meta=$(mktemp -d)
    cp "$RUN"/config.json "$RUN"/metrics.jsonl "$meta"/
    cp "$RUN"/model/config.json "$meta"/model_config.json
    tar -cf "$out"/meta.tar -C "$meta" config.json metrics.jsonl model_config.json
    rm -rf "$meta"
    split -b 15872k -d "$RUN"/train_state.pt "$out"/train_state.pt.part
    ls -la "$out"
}

case "${1:-}" in
stash)
    stash=/tmp/device_stash
    mkdir -p "$stash/training_state" "$stash/benchmarks" "$stash/internal_rl_gym"
    for d in research/training_state/pinpad-*; do
        [ "$(basename "$d")" = "${KEEP:-}" ] || mv "$d" "$stash/research/training_state/"
    done
    mv benchmarks/results "$stash/benchmarks/"
    mv internal_rl_gym/checkpoints "$stash/internal_rl_gym/"
    du -sh --exclude=.git --exclude=.venv --exclude=runs .
    ;;
unstash)
    stash=/tmp/device_stash
    mv "$stash"/research/training_state/* research/training_state/ 2>/dev/null || true
    mv "$stash/benchmarks/results" benchmarks/
    mv "$stash/internal_rl_gym/checkpoints" internal_rl_gym/
    git status --short
    ;;
fetch)
    grep -qx /.whl/ .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl \
        gymnasium==1.4.0 farama-notifications==0.0.6
    ;;
run)
    setup_python
    if [ -n "${FROM:-}" ] && [ ! -e "$RUN/train_state.pt" ]; then
        mkdir -p "$RUN"
        cp "$FROM"/train_state.pt "$FROM"/config.json "$FROM"/metrics.jsonl "$RUN"/
        echo "resuming $FROM in $RUN"
    fi
    # SIGTERM at the budget: pretraining finishes and checkpoints the step under way, then
    # stops (TERM, not INT: background jobs of a script, as in gpu_calls.sh, ignore SIGINT)
    timeout --foreground --signal=TERM "${BUDGET_S:-470}" "$PYTHON" -m agents.cli pretrain \
        --preset "${PRESET:-grid-paper}" --obs-encoder "${ENCODER:-grid_egocentric}" \
        ${N_LAYERS:+--n-layers "$N_LAYERS"} ${D_MODEL:+--d-model "$D_MODEL"} \
        --batch-size "${BATCH:-1024}" --lr "${LR:-3e-4}" --pool-size "${POOL:-65536}" \
        --data-workers "${WORKERS:-12}" --precision bf16 --steps "${STEPS:-256000}" \
        ${DECAY:+--decay-steps "$DECAY"} \
        --checkpoint-every "${CKPT_EVERY:-500}" --eval-every "${EVAL_EVERY:-4000}" --eval-episodes 256 \
        --threads "${THREADS:-4}" --out "$RUN" || echo "pretraining stopped (exit $?)"
    [ "${EXPORT:-1}" = 0 ] || export_run
    ;;
export)
    # a run's state, on its own: e.g. in a later call on the warm machine, when one call's
    # files cannot bring back two runs (at most 8 files, 64 MiB in all)
    export_run
    ;;
probe)
    # ground-truth controllers on the run's last checkpoint, with the paper's recipe (Table A7:
    # 3200 steps, batch 512, lr 1e-3); chain it after `run` in the same call
    setup_python
    # a time budget here too: probe.json is rewritten after each layer, so the layers done
    # when the budget ends still come back
    timeout --foreground --signal=TERM "${PROBE_BUDGET_S:-240}" "$PYTHON" -m agents.cli probe \
        --base-model "$RUN/model" --layers ${PROBE_LAYERS:-3} \
        --controller-steps "${PROBE_STEPS:-3200}" --batch-size "${PROBE_BATCH:-512}" --lr 1e-3 \
        --precision bf16 --data-workers "${WORKERS:-12}" --threads "${THREADS:-4}" \
        --diagnostic-tasks 0-1-2-3 0-1-4-5 --out "$RUN/probe" || echo "probe stopped (exit $?)"
    out=${OUT:-/tmp/device_out}
    mkdir -p "$out"
    # one file (the device returns at most 8): probe.json and the controllers
    (cd "$RUN"/probe && tar -cf - probe.json controllers_layer*.safetensors) >"$out"/probe.tar || true
    ls -la "$out"
    ;;
unpack)
    src=${2:?usage: device_pretrain.sh unpack <folder with the returned files>}
    mkdir -p "$RUN"
    cat "$src"/train_state.pt.part* >"$RUN"/train_state.pt.tmp
    meta=$(mktemp -d)
    if [ -e "$src"/meta.tar ]; then tar -xf "$src"/meta.tar -C "$meta"; else cp "$src"/*.json* "$meta"/; fi
    # the model folder (what probes read) is rebuilt from the weights in the training state;
    # the run folder's files are replaced only once that worked
    "$PYTHON" - "$RUN" "$meta"/model_config.json <<'PY'
import json
import sys

import torch

from agents.common import atomic_save_pretrained, atomic_write_json
from internal_rl_gym.models import BaseModel, BaseModelConfig

run, config = sys.argv[1], json.load(open(sys.argv[2]))
state = torch.load(f"{run}/train_state.pt.tmp", weights_only=True, map_location="cpu")
model = BaseModel.from_config(BaseModelConfig(**config))
model.load_state_dict(state["model"])
atomic_save_pretrained(model, f"{run}/model")
atomic_write_json(f"{run}/model/trainer_state.json", {"global_step": state["step"]})
print("unpacked", run, "at step", state["step"])
PY
    mv "$RUN"/train_state.pt.tmp "$RUN"/train_state.pt
    cp "$meta"/config.json "$meta"/metrics.jsonl "$RUN"/
    rm -rf "$meta"
    ;;
*)
    echo "usage: $0 fetch | stash | run | export | probe | unpack <folder> | unstash" >&2
    exit 2
    ;;
esac

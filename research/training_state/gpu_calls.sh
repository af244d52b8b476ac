#!/usr/bin/env bash
# The next lent GPU session's two device calls, prepared and smoke-tested on the CPU
# (research/training_state/README.md, "Plan for the next lent GPU"; session 19). One run gets the GPU:
#   runs/pinpad-linear-d4-gpu continues the committed pinpad-linear-d4 state (CPU preset,
#   linear encoder, depth 4: the only model whose L/2 controllers pay nothing for the post
#   task's new transitions and length; what holds it back is how well it imitates,
#   research/results/imitation_vs_control.json) at batch 1024 instead of 64, for
#   EXTRA steps (9000, ~9M sequences, as many as all its CPU training), the last DECAY (3000)
#   annealing the lr to 0, then probes its ground-truth controllers at L/2 and layer 3.
# Here, before call 1: `bash research/training_state/device_pretrain.sh fetch` (if .whl/ is missing) and
# `KEEP=pinpad-linear-d4 bash research/training_state/device_pretrain.sh stash`.
#   call 1 (device `run`, carry [".whl"], timeout_s 590): bash research/training_state/gpu_calls.sh call1
#     trains for BUDGET_S (450) seconds or EXTRA steps and returns the state (a/: meta.tar +
#     train_state parts) and logs.tar;
#   call 2 at once, on the warm machine (carry [".whl"], timeout_s 300):
#     bash research/training_state/gpu_calls.sh call2
#     ground-truth controllers (the paper's recipe: 3200 steps, batch 512) at PROBE_LAYERS
#     ("2 3"; L/2 first; probe.json is rewritten after each layer) within PROBE_BUDGET_S (200):
#     a/probe.tar and logs.tar.
# Back here: `unstash`, then `unpack` a/ (RUN=runs/pinpad-linear-d4-gpu). If the budget stopped
# call 1 before the anneal ended, finish it on the CPU: resume the unpacked run with the same
# --steps and --decay-steps (printed in the log) and --batch-size 1024 --lr 1e-3.
# Overrides for a CPU smoke test: everything device_pretrain.sh reads (THREADS, PYTHON, WORKERS,
# POOL, CKPT_EVERY, EVAL_EVERY, BATCH, PROBE_STEPS, PROBE_BATCH), plus EXTRA, DECAY, BUDGET_S,
# PROBE_BUDGET_S, PROBE_LAYERS, RUN_A, FROM_A.
# The session-18 plan (a paper-size linear model from scratch beside the egocentric pinpad-paper)
# is in this file's git history.
set -uo pipefail
cd "$(dirname "$0")/.."
S="bash research/training_state/device_pretrain.sh"
OUT=${OUT:-/tmp/device_out}
RUN_A=${RUN_A:-runs/pinpad-linear-d4-gpu}
FROM_A=${FROM_A:-research/training_state/pinpad-linear-d4}
PYTHON=${PYTHON:-python3}
export PYTHON WORKERS=${WORKERS:-12}
# the committed state's preset, input and depth: a resume rebuilds the model from them
export PRESET=grid-cpu ENCODER=linear N_LAYERS=4 BATCH=${BATCH:-1024} LR=${LR:-1e-3}
logs=$(mktemp -d)
mkdir -p "$OUT"

case "${1:-}" in
call1)
    start=$("$PYTHON" -c "import torch, sys; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" \
        "$FROM_A/train_state.pt") || exit 3
    export STEPS=$((start + ${EXTRA:-9000})) DECAY=${DECAY:-3000}
    echo "from step $start to $STEPS, annealing over the last $DECAY" | tee "$logs"/a_plan.log
    export BUDGET_S=${BUDGET_S:-450} EVAL_EVERY=${EVAL_EVERY:-3000}
    RUN=$RUN_A FROM=$FROM_A OUT=$OUT/a $S run >"$logs"/a_run.log 2>&1
    ;;
call2)
    if [ ! -e "$RUN_A/train_state.pt" ]; then
        echo "no $RUN_A here: the machine is not the warm one of call 1" >&2
        exit 3
    fi
    export PROBE_BUDGET_S=${PROBE_BUDGET_S:-200}
    PROBE_LAYERS=${PROBE_LAYERS:-2 3} RUN=$RUN_A OUT=$OUT/a $S probe >"$logs"/a_probe.log 2>&1
    ;;
*)
    echo "usage: $0 call1 | call2" >&2
    exit 2
    ;;
esac
tar -cf "$OUT"/logs.tar -C "$logs" .
tail -n 5 "$logs"/*.log
find "$OUT" -type f | sort

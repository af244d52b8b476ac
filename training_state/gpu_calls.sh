#!/usr/bin/env bash
# The next lent GPU session's two device calls, prepared and smoke-tested on the CPU
# (training_state/README.md, "Plan for the next lent GPU"). Two runs share the GPU:
#   A  runs/pinpad-paper-linear: the paper-size model with the paper's own input, a linear
#      embedding of the 637-d observation (ENCODER=linear), from scratch;
#   B  runs/pinpad-paper: continues the committed pinpad-paper state (egocentric encoder).
# Here, before call 1: `bash training_state/device_pretrain.sh fetch` (if .whl/ is missing) and
# `KEEP=pinpad-paper bash training_state/device_pretrain.sh stash`.
#   call 1 (device `run`, carry [".whl"], timeout_s 590): bash training_state/gpu_calls.sh call1
#     trains both for BUDGET_S (450) seconds, returns A's state (a/: meta.tar + 3 parts) and
#     logs.tar (5 files);
#   call 2 at once, on the warm machine (carry [".whl"], timeout_s 300):
#     bash training_state/gpu_calls.sh call2
#     B's state first (b/: meta.tar + 3 parts), then ground-truth controllers at PROBE_LAYERS_A
#     ("3 4" for the linear encoder, whose belief forms at layers 4-5; session 17) and
#     PROBE_LAYERS_B ("3 2"; L/2 first; probe.json is rewritten after each layer) within
#     PROBE_BUDGET_S (200): a/probe.tar, b/probe.tar, logs.tar (7 files; at most 8 come back).
# Back here: `unstash`, then `unpack` a/ and b/ (RUN=runs/pinpad-paper-linear for a/).
# Overrides for a CPU smoke test: everything device_pretrain.sh reads (PRESET, N_LAYERS, D_MODEL,
# BATCH, WORKERS, POOL, CKPT_EVERY, EVAL_EVERY, THREADS, PYTHON, PROBE_STEPS, PROBE_BATCH), plus
# BUDGET_S, PROBE_BUDGET_S, PROBE_LAYERS_A, PROBE_LAYERS_B, RUN_A, RUN_B, FROM_B.
set -uo pipefail
cd "$(dirname "$0")/.."
S="bash training_state/device_pretrain.sh"
OUT=${OUT:-/tmp/device_out}
RUN_A=${RUN_A:-runs/pinpad-paper-linear}
RUN_B=${RUN_B:-runs/pinpad-paper}
export WORKERS=${WORKERS:-6}
logs=$(mktemp -d)
mkdir -p "$OUT"

case "${1:-}" in
call1)
    export BUDGET_S=${BUDGET_S:-450} EVAL_EVERY=${EVAL_EVERY:-4000}
    RUN=$RUN_A ENCODER=linear OUT=$OUT/a $S run >"$logs"/a_run.log 2>&1 &
    RUN=$RUN_B FROM=${FROM_B:-training_state/pinpad-paper} EXPORT=0 $S run \
        >"$logs"/b_run.log 2>&1 &
    wait
    ;;
call2)
    if [ ! -e "$RUN_B/train_state.pt" ] || [ ! -e "$RUN_A/train_state.pt" ]; then
        echo "no $RUN_A or $RUN_B here: the machine is not the warm one of call 1" >&2
        exit 3
    fi
    # B's state before anything that could run long
    RUN=$RUN_B OUT=$OUT/b $S export >"$logs"/b_export.log 2>&1
    export PROBE_BUDGET_S=${PROBE_BUDGET_S:-200}
    PROBE_LAYERS=${PROBE_LAYERS_A:-3 4} RUN=$RUN_A OUT=$OUT/a $S probe >"$logs"/a_probe.log 2>&1 &
    PROBE_LAYERS=${PROBE_LAYERS_B:-3 2} RUN=$RUN_B OUT=$OUT/b $S probe >"$logs"/b_probe.log 2>&1 &
    wait
    ;;
*)
    echo "usage: $0 call1 | call2" >&2
    exit 2
    ;;
esac
tar -cf "$OUT"/logs.tar -C "$logs" .
tail -n 5 "$logs"/*.log
find "$OUT" -type f | sort

"""Point a metacontroller at another base model: a copy whose recorded base model (name and
weights' fingerprint) is the new one, so that `discover --init-from` and the benchmarks accept
it. For a fine-tune of the base model it was discovered on, whose layer-`layer` stream may
still be close enough for its gate and codes to carry over (research only: the library refuses
the pair on purpose).

    python research/scripts/transplant_metacontroller.py --metacontroller ant-metacontroller \
        --base-model runs/ant-soup-r3 --out runs/meta-transplant-soup-r3
"""

from __future__ import annotations

import argparse

from internal_rl_gym.hub import (
    load_base_model,
    load_metacontroller,
    model_fingerprint,
    save_checkpoint,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--base-model", required=True, help="the base model it will steer now")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    meta = load_metacontroller(args.metacontroller)
    base = load_base_model(args.base_model)
    if (meta.d_model, meta.layer) != (base.d_model, min(meta.layer, base.n_layers)):
        raise SystemExit(f"{args.base_model} has no d_model={meta.d_model} layer {meta.layer}")
    config = {
        **meta._hub_mixin_config,
        "base_model_fingerprint": model_fingerprint(base),
        "base_model_name": args.base_model,
    }
    moved = type(meta)(**config)
    moved.load_state_dict(meta.state_dict())
    save_checkpoint(moved, args.out)
    print(f"{args.metacontroller} -> {args.out}, now recorded as steering {args.base_model}")


if __name__ == "__main__":
    main()

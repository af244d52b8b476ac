"""A base model with a wider (or narrower) attention window and the same weights: the start of a
fine-tune that asks whether the ant model can learn to remember the last colour it visited.

    python research/scripts/rewindow.py --model ant-transformer --window 128 \
        --out runs/ant-w128-init

``internal-rl pretrain --init-from`` refuses a different ``--attention-window`` (the window is
part of the model); the window is only a mask over relative positions (``rel_max_distance``
buckets), so the weights carry over unchanged, and ``--init-from <out>`` then fine-tunes them.
"""

from __future__ import annotations

import argparse

from internal_rl_gym.hub import load_base_model, save_checkpoint
from internal_rl_gym.models import BaseModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ant-transformer")
    p.add_argument("--window", type=int, required=True, help="0 = the whole episode")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    source = load_base_model(args.model)
    cfg = source.config.replace(attention_window=args.window or None)
    model = BaseModel.from_config(cfg)
    model.load_state_dict(source.state_dict())
    print(save_checkpoint(model, args.out), cfg.attention_window)


if __name__ == "__main__":
    main()

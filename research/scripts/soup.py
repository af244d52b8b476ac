"""A model soup (Wortsman et al. 2022): the average of the weights of base models fine-tuned
from one start, for a free-play check of whether their gains add up.

    python research/scripts/soup.py --models runs/ant-darthead-ft/model \
        runs/ant-darthead3-ft/model --out runs/ant-soup

The models must share their architecture (the first one's config is kept); fine-tunes of the
same weights usually sit in one basin, where the average is a model of its own and not noise.
"""

from __future__ import annotations

import argparse

import torch

from internal_rl_gym.hub import load_base_model, save_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    models = [load_base_model(m) for m in args.models]
    first = models[0]
    for name, m in zip(args.models[1:], models[1:]):
        if m.config.replace(name=first.config.name) != first.config:  # names may differ
            raise SystemExit(f"{name} has another architecture than {args.models[0]}")
    states = [m.state_dict() for m in models]
    avg = {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype)
           for k, v in states[0].items()}  # fmt: skip
    first.load_state_dict(avg)
    print(save_checkpoint(first, args.out))


if __name__ == "__main__":
    main()

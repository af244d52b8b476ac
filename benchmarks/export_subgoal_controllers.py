"""Turn ground-truth controllers saved by ``internal-rl probe`` as a bare state dict
(``controllers_layer<l>.safetensors``, the format before checkpoints recorded their layer) into a
loadable checkpoint directory that records its layer and base model (the oracle env's
``controllers=``).

    python benchmarks/export_subgoal_controllers.py \\
        --controllers research/results/controllers_pinpad-transformer_layer1.safetensors \\
        --layer 1 --base-model pinpad-transformer \\
        --out internal_rl_gym/checkpoints/pinpad-subgoal-controllers --card card.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from internal_rl_agents.common import atomic_save_pretrained
from internal_rl_agents.probe import load_subgoal_controllers

from internal_rl_gym.hub import load_base_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--controllers", required=True, help="controllers_layer<l>.safetensors")
    p.add_argument("--layer", type=int, required=True, help="the layer they were trained at")
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--card", default="", help="markdown file to use as the model card")
    args = p.parse_args()
    base = load_base_model(args.base_model)
    ctrl = load_subgoal_controllers(args.controllers, base, layer=args.layer)
    card = Path(args.card).read_text(encoding="utf-8") if args.card else None
    print(atomic_save_pretrained(ctrl, args.out, card=card))


if __name__ == "__main__":
    main()

"""Load a base model and metacontroller from the Hugging Face Hub and act with them.

    python examples/load_from_hub.py --base-model ORG/BASE --metacontroller ORG/META [--revision SHA]

The first call downloads config.json and model.safetensors into the Hugging Face cache; later
calls work offline (HF_HUB_OFFLINE=1, or --offline for local_files_only=True). A metacontroller
refuses a base model other than the one it was trained on.
"""

import argparse

import gymnasium as gym

import internal_rl_gym  # noqa: F401
from internal_rl_gym import load_base_model, load_metacontroller

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--revision", default=None)
    p.add_argument("--offline", action="store_true")
    args = p.parse_args()

    hub = {"local_files_only": args.offline}
    base = load_base_model(args.base_model, revision=args.revision, **hub)
    meta = load_metacontroller(args.metacontroller, base_model=base, **hub)
    print(f"base model: {base.n_params / 1e6:.2f}M parameters, {base.n_layers} layers")
    print(f"metacontroller: controls layer {meta.layer}, codes of size {meta.n_z}")
    env = gym.make(
        "InternalControl-v0",
        base_model=args.base_model,
        metacontroller=args.metacontroller,
        base_model_revision=args.revision,
        hub_kwargs=hub,
    )
    obs, info = env.reset(seed=0)
    print("first observation (residual stream):", obs[:8], "...")

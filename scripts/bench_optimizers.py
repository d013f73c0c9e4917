#!/usr/bin/env python
"""Step time of every rlopt optimizer against ``torch.optim.Adam(fused=True)``, side by side in one run.

Parameters and gradients are those of a PPO-sized actor-critic (two 2x64 tanh MLPs on HalfCheetah's
17-d observation, 11k parameters), the 2x256 actor-critic that ``agents/ppo.yaml`` gives PPO on the MuJoCo
tasks (143k) and a SAC-sized set (actor and two critics, 2x256 each, 218k), once under one optimizer
and once as SB3's SAC steps it: one optimizer for the actor (74k), one for both critics (144k). Each
configuration is timed over ``--steps`` optimizer steps, ``--repeats`` times, interleaved so that machine
noise hits every configuration alike; the table shows the median time per step and its ratio to fused
Adam measured in the same run.

Usage:
    python scripts/bench_optimizers.py [--device cpu|cuda] [--steps 500] [--repeats 7] [--threads 1]
        [--networks sac]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from rlopt.optim import OPTIMIZERS, make_optimizer


def mlp(n_in: int, n_out: int, hidden: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
        torch.nn.Linear(hidden, n_out),
    )


def ppo_sized() -> torch.nn.Module:
    model = torch.nn.ModuleDict({"actor": mlp(17, 6, 64), "critic": mlp(17, 1, 64)})
    model.register_parameter("log_std", torch.nn.Parameter(torch.zeros(6)))
    return model


def ppo_zoo_sized() -> torch.nn.Module:
    """PPO as agents/ppo.yaml configures it for the MuJoCo tasks: separate 2x256 actor and critic."""
    model = torch.nn.ModuleDict({"actor": mlp(17, 6, 256), "critic": mlp(17, 1, 256)})
    model.register_parameter("log_std", torch.nn.Parameter(torch.zeros(6)))
    return model


def sac_sized() -> torch.nn.Module:
    return torch.nn.ModuleDict(
        {"actor": mlp(17, 12, 256), "q1": mlp(23, 1, 256), "q2": mlp(23, 1, 256)}
    )


def one_optimizer(net: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    return [list(net.parameters())]


def sac_actor_and_critics(net: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """SB3's SAC: ``actor.optimizer`` and ``critic.optimizer`` (both Q-networks); the entropy
    coefficient's optimizer (one scalar) is left out, as it is no network."""
    modules = dict(net.named_children())
    return [list(modules["actor"].parameters()), [*modules["q1"].parameters(), *modules["q2"].parameters()]]


Split = Callable[[torch.nn.Module], list[list[torch.nn.Parameter]]]
NETWORKS: dict[str, tuple[Callable[[], torch.nn.Module], Split]] = {
    "ppo 2x64": (ppo_sized, one_optimizer),
    "ppo 2x256 (zoo MuJoCo)": (ppo_zoo_sized, one_optimizer),
    "sac 3x(2x256)": (sac_sized, one_optimizer),
    "sac 3x(2x256), actor and critic optimizers as in SB3": (sac_sized, sac_actor_and_critics),
}


def configurations() -> dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]]:
    """Name -> builder. Baselines first; rlopt optimizers in each implementation they offer."""
    configs: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
        "torch Adam (fused)": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True),
        "torch Adam (default)": lambda ps: torch.optim.Adam(ps, lr=1e-3),
        # rlopt's default: torch's fused kernel once over flat buffers (within rounding of the first row)
        "rlopt adam (flat: fused)": lambda ps: make_optimizer("adam", ps, lr=1e-3),
        # torch's default arithmetic once over flat buffers: bit-identical to torch Adam (default)
        "rlopt adam (flat: fused=False)": lambda ps: make_optimizer("adam", ps, lr=1e-3, fused=False),
    }
    for name, spec in sorted(OPTIMIZERS.items()):
        if spec.source != "rlopt":
            continue
        variants: dict[str, dict[str, bool]] = {"flat": {"flat": True}}
        if "fused" in spec.extra:
            variants["fused: compiled"] = {"fused": True}
        variants.update({"foreach": {"flat": False}, "reference": {"foreach": False}})
        for label, kwargs in variants.items():
            configs[f"rlopt {name} ({label})"] = lambda ps, n=name, kw=kwargs: make_optimizer(n, ps, **kw)
    try:
        import pytorch_optimizer as po

        for name in ("adopt", "adan", "adabelief"):
            cls = po.load_optimizer(name)
            configs[f"pytorch-optimizer {name}"] = lambda ps, c=cls: c(ps, lr=1e-3)
    except ImportError:
        pass
    return configs


def time_steps(opts: list[torch.optim.Optimizer], steps: int, device: torch.device) -> float:
    """Seconds per step of all ``opts`` (one after the other, as an agent's update runs them)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        for opt in opts:
            opt.step()
    sync()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--networks", default="",
                        help="only the networks whose name contains this text (default: all)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1, as in study workers)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    console = Console(width=140)
    console.print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, device {device}, "
        f"{args.steps} steps x {args.repeats} repeats (median)"
    )
    chosen = {name: net for name, net in NETWORKS.items() if args.networks in name}
    if not chosen:
        parser.error(f"--networks {args.networks!r} matches none of: {', '.join(NETWORKS)}")
    for net_name, (make_net, split) in chosen.items():
        torch.manual_seed(0)
        runs: dict[str, tuple[list[torch.optim.Optimizer], list[float]]] = {}
        n_params = 0
        for label, builder in configurations().items():
            net = make_net().to(device)
            params = list(net.parameters())
            n_params = sum(p.numel() for p in params)
            opts = [builder(group) for group in split(net)]
            for p in params:
                p.grad = torch.randn_like(p) * 1e-2
            for _ in range(3):  # lazy state, and compilation, outside the timing
                for opt in opts:
                    opt.step()
            runs[label] = (opts, [])
        for _ in range(args.repeats):
            for _label, (opts, times) in runs.items():
                times.append(time_steps(opts, args.steps, device))
        base = statistics.median(runs["torch Adam (fused)"][1])
        table = Table(title=f"{net_name}: {n_params:,} parameters")
        table.add_column("configuration")
        table.add_column("median step (us)", justify="right")
        table.add_column("ratio to fused Adam", justify="right")
        for label, (_opts, times) in runs.items():
            med = statistics.median(times)
            table.add_row(label, f"{med * 1e6:.1f}", f"{med / base:.2f}x")
        console.print(table)


if __name__ == "__main__":
    main()

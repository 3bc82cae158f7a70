"""``perception train``: train the models we ship from simulator data (needs the ``train`` extra: torch).

``detector``: the CenterNet + RTM3D (+ mixture-pose) detector in ``models/sim_detector``;
``pose``: the top-down pose networks in ``models/sim_pose``. Both are seeded and cache their rendered
frames under ``data/cache``, so the same command gives the same model.
"""

from __future__ import annotations

import argparse
import importlib

_JOBS = {
    "detector": ("perception_pkg.training.detector_train", "2D/3D detector (+ bottom-up pose heads)"),
    "pose": ("perception_pkg.training.pose_train", "top-down pose networks and their decoder cards"),
    "pose-rnn": ("perception_pkg.training.pose_rnn_train", "bottom-up recurrent pose (sim_pose_rnn)"),
    "completion": ("perception_pkg.training.completion_train", "SoftPoolNet car completion (sim_completion)"),
    "weather": ("perception_pkg.training.weather_train", "ForkGAN restorer + classifier (sim_weather)"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a shipped model on simulator data (needs torch)")
    sub = p.add_subparsers(dest="job", metavar="JOB")
    sub.required = True
    for name, (module, help_text) in _JOBS.items():
        job = sub.add_parser(name, help=help_text)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # torch missing: say how to get it instead of a traceback
            job.set_defaults(func=_missing(exc))
            continue
        mod.add_arguments(job)
        job.set_defaults(func=mod.run)


def _missing(exc: ImportError):
    def fail(_args: argparse.Namespace) -> int:
        print(f"perception train needs the training extra ({exc}): pip install -e '.[train]'")
        return 2

    return fail

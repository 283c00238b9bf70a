"""Quotas: how many synthetic images each class gets, from its real training count and `generate:`.

per_class: n each. fill_to: up to `target` images per class, real + synthetic (0 when the class
already has that many). balance: up to the largest real class. Then the cap: at most
floor(max_ratio * real) synthetic images per class. A class with no real training image gets none,
whatever the mode, with a warning: the generator never saw it, so its samples would be noise that
only carries the label.
"""

import logging
import math

import numpy as np
import pandas as pd

from components.config.generator import GenerateParams

log = logging.getLogger("genaug")


def plan_quota(real_counts: dict[str, int], params: GenerateParams) -> pd.DataFrame:
    """One row per class, in the order given: class, label, real, requested (before the cap), synthetic."""
    names = list(real_counts)
    real = np.array([int(real_counts[name]) for name in names], dtype=np.int64)
    if params.mode == "per_class":
        requested = np.full(len(real), params.n, dtype=np.int64)
    elif params.mode == "fill_to":
        requested = np.maximum(0, params.target - real)
    else:  # balance
        requested = (real.max(initial=0) - real).astype(np.int64)
    synthetic = requested.copy()
    if params.max_ratio is not None:
        # the epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 at 29
        cap = np.array([math.floor(params.max_ratio * r + 1e-9) for r in real], dtype=np.int64)
        synthetic = np.minimum(synthetic, cap)
    unseen = [name for name, r, q in zip(names, real, requested) if r == 0 and q > 0]
    if unseen:
        log.warning("class(es) %s have no real training image: no synthetic samples for them "
                    "(the generator never saw them)", unseen)
    synthetic[real == 0] = 0
    return pd.DataFrame({"class": names, "label": np.arange(len(names), dtype=np.int64), "real": real,
                         "requested": requested, "synthetic": synthetic})


def format_plan(plan: pd.DataFrame, params: GenerateParams) -> str:
    """The plan as a table for the log, with totals and the rule that made it."""
    rule = {"per_class": f"n={params.n} per class", "fill_to": f"fill each class to {params.target}",
            "balance": "balance to the largest class"}[params.mode]
    cap = "no cap" if params.max_ratio is None else f"at most {params.max_ratio:g} synthetic per real image"
    table = plan.set_index("class")[["label", "real", "requested", "synthetic"]]
    table.loc["total"] = [len(plan), plan["real"].sum(), plan["requested"].sum(), plan["synthetic"].sum()]
    capped = int((plan["synthetic"] < plan["requested"]).sum())
    return (f"generation plan ({params.mode}: {rule}; {cap}; the cap or a missing class cut "
            f"{capped} class(es)):\n{table.to_string()}")

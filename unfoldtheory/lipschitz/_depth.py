"""Lipschitz bounds of the first k layers of an unrolled network, k = 1..K, and their figure.

The sub-network ``y -> x_k`` is read from the form's per-layer readouts (``Form.layer_outputs``): blocks after
the last one that readout uses cannot influence it and are dropped.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import InvalidInputError
from ..form import Form, require_form


def truncate(form: Form, k: int) -> Form:
    """The form of ``y -> x_k`` (1 <= k <= form.num_layers)."""
    if not 1 <= k <= form.num_layers:
        raise InvalidInputError(f"k must be in 1..{form.num_layers}; got {k}.")
    readout = form.layer_outputs[k - 1]
    last = max(readout)
    return Form(form.input_dim, form.blocks[: last + 1], output=readout,
                layer_outputs=[o for o in form.layer_outputs[:k] if max(o) <= last] or [readout],
                name=f"{form.name}[:{k}]")


def bounds_vs_depth(model_or_form: Any, methods: Sequence[str] = ("naive", "layerwise", "lipsdp"),
                    lower: bool = True, depths: Sequence[int] | None = None, upper_kwargs: dict | None = None,
                    lower_kwargs: dict | None = None) -> list[dict]:
    """Upper bounds (each method) and the certified lower bound of ``y -> x_k`` for every depth ``k``.

    Returns one row per depth: ``{"depth": k, "naive": Bound, "layerwise": Bound, "lipsdp": Bound, "lower":
    Bound}``.  For a sound set of bounds every row satisfies lower <= lipsdp <= layerwise <= naive (up to the
    optimiser's accuracy for the SDP pair).
    """
    from . import lower_bound, upper_bound

    form = require_form(model_or_form)
    ks = list(range(1, form.num_layers + 1)) if depths is None else [int(k) for k in depths]
    rows = []
    for k in ks:
        sub = truncate(form, k)
        row: dict = {"depth": k}
        for meth in methods:
            row[meth] = upper_bound(sub, meth, **dict(upper_kwargs or {}))
        if lower:
            row["lower"] = lower_bound(sub, **dict(lower_kwargs or {}))
        rows.append(row)
    return rows


def plot_bounds_vs_depth(rows: list[dict], ax: Any = None, title: str | None = None):
    """Plot the rows of :func:`bounds_vs_depth` (log scale); returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    depths = [r["depth"] for r in rows]
    styles = {"naive": ("naive a_K", "s-"), "layerwise": ("LipSDP-Layer", "^-"),
              "lipsdp": ("LipSDP-Neuron", "o-"),
              "lower": ("lower bound (witness)", "v--")}
    for key, (label, style) in styles.items():
        if rows and key in rows[0]:
            ax.plot(depths, [r[key].value for r in rows], style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("depth k (layers)")
    ax.set_ylabel("Lipschitz constant of y -> x_k")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return ax

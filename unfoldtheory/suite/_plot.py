"""Figures of the verification report (matplotlib, imported lazily, Agg backend)."""

from __future__ import annotations

import logging

log = logging.getLogger("unfoldtheory.suite")


def pyplot():
    """matplotlib.pyplot with a non-interactive backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: the report has no figures (pip install matplotlib)")
        return None
    return plt


def save(ctx, fig, filename: str) -> str | None:
    """Save ``fig`` as ``filename`` in the run's figure folder; returns the name relative to the report."""
    plt = pyplot()
    if ctx.out is None:
        plt.close(fig)
        return None
    folder = ctx.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / filename, dpi=110)
    plt.close(fig)
    return f"figures/{filename}"

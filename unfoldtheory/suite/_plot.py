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


def styles(n: int) -> list[dict]:
    """``n`` distinguishable line styles (colour, line style and marker all vary, so 15 or more curves stay
    apart even in grey scale): pass each as ``ax.plot(x, y, **style)``."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf"]
    lines = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p", "d"]
    return [{"color": colors[i % len(colors)], "linestyle": lines[(i // len(colors) + i) % len(lines)],
             "marker": markers[i % len(markers)], "markersize": 4} for i in range(n)]


def series_of(fig) -> dict:
    """The plotted data of a figure (axes titles, labels, scales and every line's label, x, y and style), enough
    to redraw it with :func:`redraw`; stored in ``results.json`` beside the figure's path."""
    from matplotlib.colors import to_hex

    from .._json import jsonable

    axes = []
    for ax in fig.axes:
        lines = []
        for line in ax.get_lines():
            label = line.get_label()
            lines.append({"label": "" if label.startswith("_") else label,
                          "x": [float(v) for v in line.get_xdata()], "y": [float(v) for v in line.get_ydata()],
                          "color": to_hex(line.get_color(), keep_alpha=True), "linestyle": str(line.get_linestyle()),
                          "marker": str(line.get_marker())})
        axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                     "xscale": ax.get_xscale(), "yscale": ax.get_yscale(), "lines": lines})
    return jsonable({"axes": axes})


def redraw(data: dict):
    """A matplotlib figure drawn from :func:`series_of`'s data (e.g. ``record["figure_data"]`` of
    ``results.json``), or None without matplotlib."""
    from .._json import from_jsonable

    plt = pyplot()
    if plt is None:
        return None
    data = from_jsonable(data)
    fig, axes = plt.subplots(1, max(1, len(data["axes"])), figsize=(5 * max(1, len(data["axes"])), 3.5),
                             squeeze=False)
    for ax, spec in zip(axes[0], data["axes"]):
        for line in spec["lines"]:
            ax.plot(line["x"], line["y"], color=line["color"], linestyle=line["linestyle"],
                    marker=None if line["marker"] in ("None", "none", "") else line["marker"],
                    label=line["label"] or None)
        ax.set(title=spec["title"], xlabel=spec["xlabel"], ylabel=spec["ylabel"])
        ax.set_xscale(spec["xscale"])
        ax.set_yscale(spec["yscale"])
        if any(line["label"] for line in spec["lines"]):
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def save(ctx, fig, filename: str) -> str | None:
    """Save ``fig`` as ``filename`` in the run's figure folder; returns the name relative to the report.

    Titles are made unique within a run (a title already used by another figure gets the file name appended),
    and the plotted series are kept in ``ctx.figure_data`` under the returned name, for ``results.json``."""
    plt = pyplot()
    if ctx.out is None:
        plt.close(fig)
        return None
    used = ctx.__dict__.setdefault("_figure_titles", {})
    for ax in fig.axes:
        title = ax.get_title()
        if title and used.get(title, filename) != filename:
            ax.set_title(f"{title} ({filename.rsplit('.', 1)[0]})")
        used.setdefault(ax.get_title(), filename)
    folder = ctx.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / filename, dpi=110)
    rel = f"figures/{filename}"
    if isinstance(getattr(ctx, "figure_data", None), dict):
        ctx.figure_data[rel] = series_of(fig)
    plt.close(fig)
    return rel

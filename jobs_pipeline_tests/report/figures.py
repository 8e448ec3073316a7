"""What a drawn matplotlib figure shows, read back from its artists."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Text


def _hidden_tick_labels(figure: Figure) -> set[int]:
    """Tick labels outside their axis's view: matplotlib keeps them but does not draw them."""
    hidden = set()
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-9
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not low - slack <= tick.get_loc() <= high + slack:
                    hidden.update((id(tick.label1), id(tick.label2)))
    return hidden


def texts_outside(figure: Figure) -> list[str]:
    """The drawn texts whose rendered extent leaves the figure (by more than half a pixel)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    bounds = figure.bbox
    hidden = _hidden_tick_labels(figure)
    outside = []
    for text in figure.findobj(Text):
        if not (text.get_visible() and text.get_text()) or id(text) in hidden:
            continue
        extent = text.get_window_extent(renderer)
        if (
            extent.x0 < bounds.x0 - 0.5
            or extent.y0 < bounds.y0 - 0.5
            or extent.x1 > bounds.x1 + 0.5
            or extent.y1 > bounds.y1 + 0.5
        ):
            outside.append(f"{text.get_text()!r} at {extent}")
    return outside

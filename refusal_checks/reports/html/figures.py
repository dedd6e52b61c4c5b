"""What every figure of the HTML report shares: plain data in, PNG bytes out (matplotlib).

No pyplot: figures are built as ``matplotlib.figure.Figure`` objects and drawn by the Agg
canvas, so making a figure neither selects a global backend nor registers anything with
pyplot's figure manager (a test session or notebook that uses pyplot is left alone). The
figures themselves are in :mod:`refusal_checks.reports.html.heatmaps` (annotated matrices) and
:mod:`refusal_checks.reports.html.rates` (rates against strength or category).
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 96
# Every figure uses these sizes explicitly, so global rcParams set by someone else change
# only colours and fonts, not the layout.
FONT = 8


def png_bytes(figure: Figure) -> bytes:
    """Draw with Agg and return the PNG; the figure is cleared afterwards."""
    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    try:
        canvas.print_png(buffer)
    finally:
        figure.clear()
    return buffer.getvalue()


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")

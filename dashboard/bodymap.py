"""A front/back body figure as SVG, muscles as regions coloured by twitch rate (pure, no Streamlit).

The silhouette is drawn from circles and rounded rectangles; each muscle region is an ellipse.
Geometry is written once, for the person's right side seen from the front (the viewer's left), and
mirrored for the left side and for the back view, where the person's right is on the viewer's right.
Muscle names map to regions by their words (``processing.segments``, the vocabulary the worker's body
segments use too): ``calf_left``, ``gastrocnemius_r``, ``forearm_flexor_left`` and ``left_calf`` all
work; a name with no known word is returned as unplaced, for listing beside the figure.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from twitchwatch.processing.segments import PART_BY_NAME, Side, locate

View = Literal["front", "back"]

WIDTH = 160  # one figure; the two views sit side by side
HEIGHT = 370
GAP = 40
CENTRE = WIDTH / 2
SILHOUETTE_FILL = "#f4f1ec"
OUTLINE = "#8a8a8a"
# Light yellow to dark red: readable on white and for the common red-green colour deficiencies.
LOW = (255, 237, 160)
HIGH = (189, 0, 38)


@dataclass(frozen=True)
class Ellipse:
    cx: float  # for the person's right side in the front view (cx < CENTRE), or on the midline
    cy: float
    rx: float
    ry: float


@dataclass(frozen=True)
class Region:
    name: str  # a body part of ``processing.segments`` (which holds the words that name it)
    shapes: Mapping[View, Ellipse]  # the views it is visible in
    sided: bool = True

    @property
    def words(self) -> tuple[str, ...]:
        return PART_BY_NAME[self.name].words


# The shapes of the body parts; which names mean which part is ``processing.segments``' vocabulary, shared
# with the worker's rest gate (a muscle's body segment).
REGIONS: tuple[Region, ...] = (
    Region("eye", {"front": Ellipse(72, 26, 5, 3)}),
    Region("neck", {"front": Ellipse(80, 56, 7, 6), "back": Ellipse(80, 56, 8, 7)}, sided=False),
    Region("shoulder", {"front": Ellipse(44, 72, 9, 8), "back": Ellipse(44, 72, 9, 8)}),
    Region("chest", {"front": Ellipse(66, 88, 13, 11)}),
    Region("abdomen", {"front": Ellipse(71, 135, 8, 22)}),
    Region("upper_back", {"back": Ellipse(66, 95, 13, 18)}),
    Region("lower_back", {"back": Ellipse(71, 150, 8, 16)}),
    Region("biceps", {"front": Ellipse(39, 105, 7, 20)}),
    Region("triceps", {"back": Ellipse(39, 105, 7, 20)}),
    Region("forearm", {"front": Ellipse(36, 172, 7, 24), "back": Ellipse(36, 172, 7, 24)}),
    Region("hand", {"front": Ellipse(35, 214, 7, 10)}),
    Region("glute", {"back": Ellipse(67, 190, 13, 12)}),
    Region("thigh", {"front": Ellipse(65, 225, 11, 34)}),
    Region("hamstring", {"back": Ellipse(65, 232, 11, 30)}),
    Region("shin", {"front": Ellipse(65, 305, 7, 28)}),
    Region("calf", {"back": Ellipse(65, 300, 10, 26)}),
    Region("foot", {"front": Ellipse(63, 352, 9, 6), "back": Ellipse(63, 352, 9, 6)}),
)
_BY_NAME = {region.name: region for region in REGIONS}


@dataclass(frozen=True)
class Placement:
    region: Region
    side: Side


def place(muscle: str) -> Placement | None:
    """Where a muscle name goes on the figure, or None when none of its words is known
    (``processing.segments.locate``: the most specific word wins, "forearm" before "arm"). A sided region
    without a side in the name (plain "calf") is drawn on both sides."""
    where = locate(muscle)
    return None if where is None else Placement(_BY_NAME[where.part.name], where.side)


def colour(rate: float, max_rate: float) -> str:
    """Linear from LOW (rate 0) to HIGH (the highest rate shown)."""
    f = 0.0 if max_rate <= 0 else min(max(rate / max_rate, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * f) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class BodyMap:
    svg: str
    placed: dict[str, str]  # muscle -> fill colour
    unplaced: list[str]  # muscles with no region, listed beside the figure
    max_rate: float


def _mirror(cx: float) -> float:
    return 2 * CENTRE - cx


def _xs(shape: Ellipse, side: Side, view: View) -> list[float]:
    """x positions of a region for a side; the geometry is the person's right, seen from the front."""
    if side == "centre":
        return [shape.cx] if shape.cx == CENTRE else [shape.cx, _mirror(shape.cx)]
    right_x = shape.cx if view == "front" else _mirror(shape.cx)
    return [right_x if side == "right" else _mirror(right_x)]


def _silhouette(x0: float) -> list[str]:
    def rect(x: float, y: float, w: float, h: float, r: float) -> str:
        return (
            f'<rect x="{x0 + x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{r:g}" '
            f'fill="{SILHOUETTE_FILL}" stroke="{OUTLINE}"/>'
        )

    parts = [
        f'<circle cx="{x0 + CENTRE:g}" cy="28" r="20" fill="{SILHOUETTE_FILL}" stroke="{OUTLINE}"/>',
        rect(72, 46, 16, 18, 4),  # neck
        rect(48, 62, 64, 120, 14),  # torso
    ]
    for x in (28, 114):  # arms: upper arm, forearm, hand
        parts += [rect(x, 66, 18, 76, 9), rect(x - 1, 144, 18, 58, 9), rect(x - 1, 203, 16, 22, 8)]
    for x in (52, 82):  # legs: thigh, lower leg, foot
        parts += [rect(x, 178, 26, 94, 12), rect(x + 3, 272, 20, 74, 10), rect(x + 1, 345, 22, 12, 6)]
    return parts


def body_map(rates: Mapping[str, float], title_suffix: str = "twitches per hour") -> BodyMap:
    """The figure for ``rates`` (muscle -> twitches per hour); colours scale to the highest rate."""
    max_rate = max(rates.values(), default=0.0)
    placed: dict[str, str] = {}
    unplaced: list[str] = []
    regions: list[str] = []
    for muscle in sorted(rates):
        where = place(muscle)
        if where is None:
            unplaced.append(muscle)
            continue
        fill = colour(rates[muscle], max_rate)
        placed[muscle] = fill
        label = html.escape(f"{muscle}: {rates[muscle]:.2f} {title_suffix}")
        for view, shape in where.region.shapes.items():
            x0 = 0.0 if view == "front" else WIDTH + GAP
            for cx in _xs(shape, where.side if where.region.sided else "centre", view):
                regions.append(
                    f'<ellipse data-muscle="{html.escape(muscle)}" cx="{x0 + cx:g}" cy="{shape.cy:g}" '
                    f'rx="{shape.rx:g}" ry="{shape.ry:g}" fill="{fill}" stroke="#444" stroke-width="0.8">'
                    f"<title>{label}</title></ellipse>"
                )
    total_w = 2 * WIDTH + GAP
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w} {HEIGHT + 60}" '
        f'width="{total_w * 1.2:g}" role="img" aria-label="body map of twitch rate by muscle">',
        *_silhouette(0),
        *_silhouette(WIDTH + GAP),
        *regions,
        _text(CENTRE, HEIGHT + 4, "front"),
        _text(WIDTH + GAP + CENTRE, HEIGHT + 4, "back"),
        # The figures face the viewer (front) and away (back): say which side is which.
        _text(20, 14, "R", size=10),
        _text(WIDTH - 20, 14, "L", size=10),
        _text(WIDTH + GAP + 20, 14, "L", size=10),
        _text(2 * WIDTH + GAP - 20, 14, "R", size=10),
        *_legend(max_rate, HEIGHT + 20, total_w, title_suffix),
        "</svg>",
    ]
    return BodyMap("".join(parts), placed, unplaced, max_rate)


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" '
        f'font-family="sans-serif" fill="#333">{html.escape(text)}</text>'
    )


def _legend(max_rate: float, y: float, total_w: float, unit: str) -> list[str]:
    """A gradient bar from 0 to the highest rate, plus the no-data swatch."""
    x, w, steps = 40.0, total_w - 80.0, 10
    parts = [
        f'<rect x="{x + i * w / steps:g}" y="{y:g}" width="{w / steps + 0.5:g}" height="10" '
        f'fill="{colour(max_rate * i / (steps - 1), max_rate)}"/>'
        for i in range(steps)
    ]
    parts += [
        _text(x, y + 24, "0", size=10, anchor="start"),
        _text(x + w, y + 24, f"{max_rate:.2f}", size=10, anchor="end"),
        _text(x + w / 2, y + 24, unit, size=10),
        f'<rect x="{x:g}" y="{y + 30:g}" width="10" height="10" '
        f'fill="{SILHOUETTE_FILL}" stroke="{OUTLINE}"/>',
        _text(x + 14, y + 39, "no sensor / no data", size=10, anchor="start"),
    ]
    return parts


def rates_by_muscle(muscles: Sequence[str], per_hour: Sequence[float]) -> dict[str, float]:
    return dict(zip(muscles, per_hour, strict=True))


def as_img(figure: BodyMap) -> str:
    """The figure as an ``<img>`` with a data URI and a text alternative listing the rates."""
    encoded = base64.b64encode(figure.svg.encode()).decode("ascii")
    alt = html.escape("Body map: " + (", ".join(figure.placed) or "no placed muscles"), quote=True)
    return f'<img src="data:image/svg+xml;base64,{encoded}" alt="{alt}" style="max-width: 100%">'

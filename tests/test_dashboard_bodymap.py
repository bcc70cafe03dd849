"""The body map: muscle names to regions and sides, colours by rate, unknown names listed apart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from twitchwatch.dashboard import bodymap

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("muscle", "region", "side"),
    [
        ("calf_left", "calf", "left"),
        ("left_calf", "calf", "left"),
        ("gastrocnemius_r", "calf", "right"),
        ("forearm_flexor_left", "forearm", "left"),
        ("biceps_right", "biceps", "right"),
        ("biceps_femoris_l", "hamstring", "left"),
        ("thigh_left", "thigh", "left"),
        ("upper_arm_right", "biceps", "right"),
        ("lower_back", "lower_back", "centre"),
        ("neck", "neck", "centre"),
        ("eyelid_left", "eye", "left"),
        ("Tibialis-Anterior-Right", "shin", "right"),
    ],
)
def test_known_names_find_their_region_and_side(muscle: str, region: str, side: str) -> None:
    where = bodymap.place(muscle)
    assert where is not None
    assert (where.region.name, where.side) == (region, side)


@pytest.mark.parametrize("muscle", ["device7.emg.ch0", "sensor_a", "left"])
def test_unknown_names_are_not_placed(muscle: str) -> None:
    assert bodymap.place(muscle) is None


def ellipses(svg: str) -> dict[str, list[ET.Element]]:
    root = ET.fromstring(svg)
    found: dict[str, list[ET.Element]] = {}
    for e in root.iter(f"{SVG}ellipse"):
        found.setdefault(e.attrib["data-muscle"], []).append(e)
    return found


def test_regions_are_coloured_by_rate_and_unknowns_listed() -> None:
    figure = bodymap.body_map({"calf_left": 4.0, "calf_right": 1.0, "forearm_left": 0.0, "sensor_a": 2.0})
    shapes = ellipses(figure.svg)
    assert set(shapes) == {"calf_left", "calf_right", "forearm_left"}
    assert figure.unplaced == ["sensor_a"]
    assert figure.max_rate == 4.0
    assert shapes["calf_left"][0].attrib["fill"] == bodymap.colour(4.0, 4.0) == "#bd0026"
    assert shapes["forearm_left"][0].attrib["fill"] == bodymap.colour(0.0, 4.0) == "#ffeda0"
    assert shapes["calf_right"][0].attrib["fill"] == bodymap.colour(1.0, 4.0)
    # The forearm shows in both views, the calf only from the back.
    assert len(shapes["forearm_left"]) == 2
    assert len(shapes["calf_left"]) == 1
    # Tooltips carry the number.
    assert shapes["calf_left"][0].find(f"{SVG}title").text == "calf_left: 4.00 twitches per hour"  # type: ignore[union-attr]


def test_left_and_right_are_mirrored_between_views() -> None:
    shapes = ellipses(bodymap.body_map({"forearm_left": 1.0, "forearm_right": 1.0}).svg)
    front_back = {m: sorted(float(e.attrib["cx"]) for e in es) for m, es in shapes.items()}
    # Front view (x < WIDTH): the person's left is on the viewer's right.
    left_front, left_back = front_back["forearm_left"]
    right_front, right_back = front_back["forearm_right"]
    assert left_front > bodymap.CENTRE > right_front
    back_centre = bodymap.WIDTH + bodymap.GAP + bodymap.CENTRE
    assert left_back < back_centre < right_back


def test_legend_spans_zero_to_the_highest_rate() -> None:
    svg = bodymap.body_map({"calf_left": 2.5}).svg
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "0" in texts
    assert "2.50" in texts
    assert "twitches per hour" in texts


def test_colour_of_nothing_is_the_low_end() -> None:
    assert bodymap.colour(0.0, 0.0) == "#ffeda0"

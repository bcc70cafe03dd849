"""Where a muscle is on the body, from the words of its name: the body part (the dashboard's body map
draws it) and the body *segment* it moves with (the rest gate vetoes a muscle while anything on its
segment moves, ``processing/rest.py``).

A segment is a part of the body that moves as one: a walk moves both lower legs, a wave moves the
forearm and hand but not the calf. Two wearables on one segment see the same limb movement, so the
worker lets the accelerometer or gyroscope of one veto the muscles the other watches. Sided segments
carry the side (``lower_leg_left``); a name without a side on a sided segment gets the bare segment
(``lower_leg``), which groups only with other names without a side — guessing a side would veto the
wrong leg.

Names are matched by their words (split at anything that is not a letter), with the side from
``left``/``l``/``lt`` or ``right``/``r``/``rt``: ``calf_left``, ``left_calf``, ``gastrocnemius_r``,
``forearm_flexor_left``, ``biceps_femoris_l`` (hamstring), ``Tibialis-Anterior-Right`` (shin). The most
specific word wins: ``forearm`` before ``arm``, ``lower`` (back) before ``back``, and words that only
qualify another (``upper``, ``lower``, ``arm``, ``leg``, ``back``, ``flexor``, ``extensor``) place a name
only when nothing more specific is in it. Pure: no I/O. The device map can override a device's segment
(``segment = "…"`` in twitchwatch's TOML; ``SEGMENTS`` lists the valid names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Side = Literal["left", "right", "centre"]


@dataclass(frozen=True)
class Part:
    """A body part: the words that name it and the segment it moves with."""

    name: str
    words: tuple[str, ...]
    segment: str
    sided: bool = True  # a left and a right one (the body map draws the named side)


PARTS: tuple[Part, ...] = (
    Part("eye", ("eye", "eyelid", "orbicularis", "face"), "head"),
    Part("neck", ("neck", "trapezius", "sternocleidomastoid", "scm"), "neck", sided=False),
    Part("shoulder", ("shoulder", "deltoid", "delt"), "upper_arm"),
    Part("chest", ("chest", "pectoral", "pectoralis", "pec"), "trunk"),
    Part("abdomen", ("abdomen", "abs", "abdominal", "belly", "rectus"), "trunk"),
    Part("upper_back", ("upper", "back", "rhomboid", "lat", "latissimus"), "trunk"),
    Part("lower_back", ("lower", "lumbar", "erector"), "trunk"),
    Part("biceps", ("biceps", "bicep", "arm", "upperarm"), "upper_arm"),
    Part("triceps", ("triceps", "tricep"), "upper_arm"),
    Part("forearm", ("forearm", "wrist", "brachioradialis", "flexor", "extensor"), "forearm"),
    Part("hand", ("hand", "thumb", "finger", "thenar"), "hand"),
    Part("glute", ("glute", "gluteus", "buttock"), "pelvis"),
    Part("thigh", ("thigh", "quad", "quads", "quadriceps", "vastus"), "thigh"),
    Part("hamstring", ("hamstring", "hamstrings", "biceps_femoris"), "thigh"),
    Part("shin", ("shin", "tibialis", "tibia"), "lower_leg"),
    Part("calf", ("calf", "calves", "gastrocnemius", "gastroc", "soleus", "leg"), "lower_leg"),
    Part("foot", ("foot", "feet", "toe", "toes", "sole"), "foot"),
)
PART_BY_NAME = {p.name: p for p in PARTS}
_BY_WORD = {word: part for part in PARTS for word in part.words}
_LEFT = {"left", "l", "lt"}
_RIGHT = {"right", "r", "rt"}
# Words that only qualify another: they place a name only when nothing more specific is in it.
_WEAK = {"upper", "lower", "arm", "leg", "back", "flexor", "extensor"}

# Segments that come in a left and a right one.
SIDED_SEGMENTS = ("upper_arm", "forearm", "hand", "thigh", "lower_leg", "foot")
_CENTRE_SEGMENTS = ("head", "neck", "trunk", "pelvis")
# Every segment name the table gives (and the device map accepts).
SEGMENTS: tuple[str, ...] = (
    *_CENTRE_SEGMENTS,
    *(f"{s}_{side}" for s in SIDED_SEGMENTS for side in ("left", "right")),
    *SIDED_SEGMENTS,
)


@dataclass(frozen=True)
class Location:
    part: Part
    side: Side


def locate(muscle: str) -> Location | None:
    """The body part a muscle name means and its side, or None when none of its words is known.

    A sided part without a side in the name (plain "calf") is on side "centre": both or unknown."""
    words = [w for w in re.split(r"[^a-z]+", muscle.lower()) if w]
    side: Side = "centre"
    if any(w in _LEFT for w in words):
        side = "left"
    elif any(w in _RIGHT for w in words):
        side = "right"
    if "biceps_femoris" in "_".join(words):
        return Location(_BY_WORD["biceps_femoris"], side)
    strong = [w for w in words if w in _BY_WORD and w not in _WEAK]
    if strong:
        return Location(_BY_WORD[strong[0]], side)
    if "back" in words:
        return Location(_BY_WORD["lower" if "lower" in words else "back"], side)
    for weak_word in ("arm", "leg", "flexor", "extensor"):
        if weak_word in words:
            return Location(_BY_WORD[weak_word], side)
    return None


def segment_of(muscle: str) -> str | None:
    """The body segment a muscle moves with (``lower_leg_left``, ``forearm_right``, ``trunk`` …), or None
    when its name says nothing the table knows."""
    where = locate(muscle)
    if where is None:
        return None
    segment = where.part.segment
    if segment in SIDED_SEGMENTS and where.side != "centre":
        return f"{segment}_{where.side}"
    return segment

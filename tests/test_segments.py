"""Body segments from muscle names (processing/segments.py), the vocabulary the body map shares."""

from __future__ import annotations

import pytest

from twitchwatch.dashboard import bodymap
from twitchwatch.processing.segments import PARTS, SEGMENTS, segment_of


@pytest.mark.parametrize(
    ("muscle", "segment"),
    [
        ("calf_left", "lower_leg_left"),
        ("gastrocnemius_r", "lower_leg_right"),
        ("soleus_left", "lower_leg_left"),
        ("tibialis_anterior_left", "lower_leg_left"),
        ("shin_right", "lower_leg_right"),
        ("forearm_flexor_left", "forearm_left"),
        ("flexor_carpi_radialis_l", "forearm_left"),
        ("extensor_right", "forearm_right"),
        ("wrist_left", "forearm_left"),
        ("biceps_left", "upper_arm_left"),
        ("triceps_r", "upper_arm_right"),
        ("deltoid_left", "upper_arm_left"),
        ("biceps_femoris_l", "thigh_left"),
        ("quadriceps_right", "thigh_right"),
        ("thenar_left", "hand_left"),
        ("eyelid_left", "head"),  # the eye has a side on the map, the head moves as one
        ("lower_back", "trunk"),
        ("neck", "neck"),
        ("glute_left", "pelvis"),
        ("calf", "lower_leg"),  # no side in the name: not guessed
    ],
)
def test_muscle_names_give_their_body_segment(muscle: str, segment: str) -> None:
    assert segment_of(muscle) == segment
    assert segment in SEGMENTS


@pytest.mark.parametrize("muscle", ["device7.emg.ch0", "sensor_a", "left"])
def test_unknown_names_have_no_segment(muscle: str) -> None:
    assert segment_of(muscle) is None


def test_the_body_map_draws_every_part_the_segment_table_knows() -> None:
    assert [r.name for r in bodymap.REGIONS] == [p.name for p in PARTS]
    qualifiers = {"upper", "lower", "arm", "leg", "back", "flexor", "extensor", "biceps_femoris"}
    for part in PARTS:
        for word in set(part.words) - qualifiers:
            where = bodymap.place(f"{word}_left")
            assert where is not None, word
            assert where.region.name == part.name, word

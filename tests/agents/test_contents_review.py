"""Contents through learning and review: a skill expects a pour only when its demos show one, and the
review fails a step whose master received nothing (the diagnose gives up: a spill cannot be re-poured)."""

from __future__ import annotations

import pytest

from agents.adapter_contents import judge_transfer
from agents.reasoning.offline import OfflineReasoner
from agents.reasoning.questions import DiagnoseQuestion, ExecutionFacts
from agents.skill_contents import content_transfer
from core.contents import ContentsReading, ContentTransfer, SegmentContents
from core.grounding import Phase, Segment
from core.skills import ManipulationConstraint

H = 0.08


def _reading(level: float | None) -> ContentsReading:
    if level is None:
        return ContentsReading(coverage=0.02)
    return ContentsReading(level_m=level, fill=level / H, volume_m3=level * 0.003, coverage=0.5, n_points=100)


def _seg(master: tuple[float | None, float | None], slave: tuple[float | None, float | None] = (None, None)) -> Segment:
    return Segment(index=1, start_frame=10, end_frame=90, start_time=0.6, end_time=6.0, phase=Phase.manipulation,
                   master="cup_target", slave="cup_source",
                   master_contents=SegmentContents(start=_reading(master[0]), end=_reading(master[1])),
                   slave_contents=SegmentContents(start=_reading(slave[0]), end=_reading(slave[1])))


def test_demos_that_fill_the_master_teach_a_transfer() -> None:
    t = content_transfer([_seg((0.014, 0.022)), _seg((0.014, 0.021)), _seg((0.014, 0.023), (0.03, 0.016))])
    assert t is not None and t.demos == 3 and t.of_demos == 3
    assert t.master_gain_m3 == pytest.approx(0.008 * 0.003, rel=0.01)


def test_a_fixture_s_part_or_the_hand_pours_nothing_whatever_the_master_seems_to_gain() -> None:
    # wash_pan: turning the faucet's lever on runs water through the faucet's box; it rises like a cup
    # being filled, but a lever holds nothing to pour
    filling = [_seg((0.014, 0.022)), _seg((0.014, 0.021)), _seg((0.014, 0.023))]
    assert content_transfer(filling) is not None
    assert content_transfer(filling, slave_free=False) is None


def test_no_transfer_when_the_master_does_not_fill_or_the_slave_fills_instead() -> None:
    still = [_seg((0.014, 0.0141)), _seg((0.014, 0.014)), _seg((0.014, 0.0142))]
    assert content_transfer(still) is None
    backwards = [_seg((0.014, 0.022), (0.02, 0.03)), _seg((0.014, 0.022), (0.02, 0.03))]
    assert content_transfer(backwards) is None
    one = [_seg((0.014, 0.022)), _seg((0.014, 0.014)), _seg((0.014, 0.0141))]  # one demo of three: not consistent
    assert content_transfer(one) is None


def test_a_rise_seen_through_a_smaller_view_of_the_inside_is_not_a_transfer() -> None:
    # a brush held in a pan: the end frame sees a third of the floor, whose strip reads centimetres higher;
    # from the bench's brush_pan demos (seen share 0.68 -> 0.28, level 5 -> 12 mm)
    def hidden(seg: Segment) -> Segment:
        mc = seg.master_contents
        assert mc is not None
        return seg.model_copy(update={"master_contents": mc.model_copy(
            update={"end": mc.end.model_copy(update={"coverage": 0.2})})})

    assert content_transfer([hidden(_seg((0.005, 0.012))) for _ in range(3)]) is None
    assert content_transfer([_seg((0.005, 0.012)) for _ in range(3)]) is not None  # seen alike: a transfer


def test_demos_whose_master_was_not_seen_do_not_count_against_it() -> None:
    t = content_transfer([_seg((0.014, 0.022)), _seg((0.014, 0.022)), _seg((None, None)), _seg((None, 0.02))])
    assert t is not None and (t.demos, t.of_demos) == (2, 2)


def test_old_memories_without_the_field_still_load() -> None:
    from core.program import TrajectoryProgram

    program = TrajectoryProgram.model_validate({"start": {"position": [0.0, 0.0, 0.1]}})
    c = ManipulationConstraint.model_validate({"program": program.model_dump(mode="json")})
    assert c.content_transfer is None


TRANSFER = ContentTransfer(master_gain_m3=2.4e-5, master_gain_fill=0.1, demos=4, of_demos=5, min_share=0.4)


def test_the_review_fails_a_pour_whose_master_received_nothing_and_says_so() -> None:
    c = judge_transfer(TRANSFER, _reading(0.014), _reading(0.0145), "cup_target")
    assert c["contents_transferred"] is False
    assert "the cup target holds" in c["message"] and "of what the demos poured into it" in c["message"]


def test_the_review_passes_a_pour_whose_master_received_its_share() -> None:
    c = judge_transfer(TRANSFER, _reading(0.014), _reading(0.0215), "cup_target")
    assert c["contents_transferred"] is True and c["contents_share"] > 0.9


def test_a_master_whose_inside_is_not_seen_gets_no_contents_verdict() -> None:
    c = judge_transfer(TRANSFER, _reading(None), _reading(0.02), "cup_target")
    assert "contents_transferred" not in c and "not seen" in c["message"]


def test_the_diagnose_gives_up_on_a_spill_instead_of_pouring_again() -> None:
    facts = ExecutionFacts(phase=Phase.manipulation, motion_status="done", object_held_at_end=False,
                           subgoal_met=False, contents_expected_m3=2.4e-5, contents_gained_m3=1e-6,
                           contents_share=0.04, contents_transferred=False, message="the cup target holds 4 %")
    a = OfflineReasoner().diagnose(DiagnoseQuestion(skill_id="s", subtask="pour", facts=facts))
    assert a.cause == "contents_lost" and a.give_up
    assert "4%" in a.explanation


def _obj(x: float):  # noqa: ANN202
    import numpy as np

    from core.geometry import Pose
    from core.grounding import ObjectDescriptor
    from tools.perception.scene import PerceivedObject

    T = np.eye(4)
    T[0, 3] = x
    d = ObjectDescriptor(name="cup_target", T_world_object=Pose.from_matrix(T), bbox_size=(0.09, 0.09, 0.08),
                         color_rgb=(0, 200, 0))
    return PerceivedObject(descriptor=d, points=np.zeros((0, 3)))


def test_a_hidden_inside_at_the_start_falls_back_on_the_runs_last_clear_reading_of_the_same_place() -> None:
    import numpy as np

    from agents.adapter_contents import baseline

    clear = (np.eye(4), _reading(0.014))
    hidden = (np.eye(4), _reading(None))
    assert baseline({"cup_target": clear}, _obj(0.0), hidden) is clear
    assert baseline({"cup_target": clear}, _obj(0.0), (np.eye(4), _reading(0.02)))[1].level_m == 0.02
    # the master moved since that reading: it no longer says what it holds where it stands
    assert baseline({"cup_target": clear}, _obj(0.2), hidden) is hidden


def test_a_slave_that_still_holds_its_contents_means_nothing_was_poured_and_is_retried_with_more_tilt() -> None:
    c = judge_transfer(TRANSFER, _reading(0.014), _reading(0.014), "cup_target",
                       slave=(_reading(0.03), _reading(0.0298), 0.09))
    assert c["contents_transferred"] is False and c["slave_emptied"] is False
    assert "still holds its contents" in c["message"]
    facts = ExecutionFacts(phase=Phase.manipulation, motion_status="done", subgoal_met=False,
                           contents_share=0.0, contents_transferred=False, slave_emptied=False)
    a = OfflineReasoner().diagnose(DiagnoseQuestion(skill_id="s", subtask="pour", facts=facts))
    assert not a.give_up and a.revision.angle_scale > 1.0


def test_a_slave_emptied_while_the_master_got_nothing_is_a_spill() -> None:
    c = judge_transfer(TRANSFER, _reading(0.014), _reading(0.0145), "cup_target",
                       slave=(_reading(0.03), _reading(0.015), 0.09))
    assert c["slave_emptied"] is True and "its contents went elsewhere" in c["message"]

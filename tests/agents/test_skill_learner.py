import numpy as np
import pytest

from agents.reasoning import make_reasoner
from agents.reasoning.protocol import BaseReasoner
from agents.reasoning.questions import TrajectoryAnswer
from agents.skill_learner import SkillLearningError, align_segments, learn_task
from core.grounding import Phase
from core.program import Line, StartPose, TrajectoryProgram
from core.settings import load_settings
from memory.embeddings import LexicalEmbedder
from memory.store import open_memory
from tests.agents.synthetic import door_demo, pan_demo
from tools.constraints.grasp import containment
from tools.constraints.instantiate import matrices_at

PAN_SIZE = (0.33, 0.21, 0.046)


@pytest.fixture
def memory(tmp_path):
    mem = open_memory(load_settings(memory_path=tmp_path / "m.sqlite"), embedder=LexicalEmbedder())
    yield mem
    mem.close()


@pytest.fixture(scope="module")
def door_demos():
    return [door_demo(i) for i in range(5)]


def test_learns_a_grasp_and_an_arc_skill_and_stores_the_plan(door_demos, memory):
    r = make_reasoner("offline", on_call=lambda c: None)
    res = learn_task(door_demos, task="open_door", goal="open the cabinet door", paraphrases=["swing the door open"],
                     reasoner=r, memory=memory)
    grasp, swing = res.skills
    assert grasp.phase == Phase.grasping and swing.phase == Phase.manipulation
    assert grasp.provenance.containment >= 0.9 and "front" in grasp.semantic
    assert swing.manipulation.program.family == "arc" and swing.provenance.fit_error_m < 0.01
    assert swing.master.name == "cabinet" and swing.slave.name == "cabinet_door"
    assert swing.provenance.demo_ids == [d.demo_id for d in door_demos]
    assert [s.skill_id for s in res.plan.steps] == [grasp.id, swing.id]
    assert memory.get_plan("open_door") == res.plan
    assert {s.id for s in memory.list_skills()} == {grasp.id, swing.id}
    # the learned region holds the grasps of every demo, measured with each demo's own object size
    for d in door_demos:
        g = d.grasps()[0]
        assert containment(grasp.grasp, [g.T_object_gripper], d.object("cabinet_door").bbox_size) == 1.0


def test_wiping_is_learned_as_a_zigzag(memory):
    res = learn_task([pan_demo(i) for i in range(5)], task="wipe_pan", reasoner=make_reasoner("offline",
                                                                                              on_call=lambda c: None))
    assert res.skills[1].manipulation.program.family == "zigzag"
    assert res.plan.goal == "wipe pan"


def test_an_outlier_grasp_is_left_out(door_demos):
    demos = [*door_demos[:4], door_demo(9, outlier=True)]
    res = learn_task(demos, task="open_door", reasoner=make_reasoner("offline", on_call=lambda c: None))
    assert res.skills[0].provenance.containment == pytest.approx(0.8)


class BadFitReasoner(BaseReasoner):
    """Answers every trajectory question with a straight line (a poor fit for a door)."""

    name = "bad-fit"

    def __init__(self):
        super().__init__(on_call=lambda c: None)
        self.offline = make_reasoner("offline", on_call=lambda c: None)

    def _answer(self, question, q, answer_type):
        from agents.reasoning.protocol import CallMeta

        if question == "fit_trajectory":
            prog = TrajectoryProgram(start=StartPose(position=("master.x/2", 0, 0)),
                                     steps=[Line(direction=(1, 0, 0), distance=0.3)], family="line")
            return TrajectoryAnswer(semantic="pull", program=prog), CallMeta()
        return getattr(self.offline, question)(q), CallMeta()


def test_a_poor_fit_is_refused_and_nothing_is_stored(door_demos, memory):
    with pytest.raises(SkillLearningError, match=r"swing the cabinet door open.*fit error .* over the 2.0 cm"):
        learn_task(door_demos, task="open_door", reasoner=BadFitReasoner(), memory=memory)
    assert memory.list_skills() == [] and memory.list_plans() == []


def test_segments_are_aligned_by_order_and_label(door_demos):
    odd = door_demo(7)
    odd.segments = [odd.segments[1]]  # this demo lacks the grasp segment
    odd.interactions = [odd.interactions[1]]
    ref, matched = align_segments([*door_demos[:3], odd])
    assert [s.phase for s in ref] == [Phase.grasping, Phase.manipulation]
    assert matched[3][0] is None and matched[3][1] is not None
    res = learn_task([*door_demos[:3], odd], task="open_door", reasoner=make_reasoner("offline",
                                                                                      on_call=lambda c: None))
    assert len(res.skills[0].provenance.demo_ids) == 3 and len(res.skills[1].provenance.demo_ids) == 4
    assert any("lack" in n for n in res.notes)


def _without_manipulation(d):
    return d.model_copy(update={"segments": d.segments[:1], "interactions": d.interactions[:1]})


def test_a_step_two_demos_show_is_not_outvoted_by_demos_that_lost_it(door_demos):
    # three demos lost the swing (e.g. its hand path fell under the grounder's 10 cm rule), two kept it
    demos = [*(_without_manipulation(d) for d in door_demos[:3]), *door_demos[3:]]
    ref, matched = align_segments(demos)
    assert [s.phase for s in ref] == [Phase.grasping, Phase.manipulation]
    assert [row[1] is not None for row in matched] == [False, False, False, True, True]
    res = learn_task(demos, task="open_door", reasoner=make_reasoner("offline", on_call=lambda c: None))
    assert res.skills[1].manipulation.program.family == "arc"
    assert res.skills[1].provenance.demo_ids == [d.demo_id for d in door_demos[3:]]
    assert any("3 demo(s) lack it" in n for n in res.notes)


def test_a_step_only_one_demo_shows_stays_out_of_the_plan(door_demos):
    demos = [*(_without_manipulation(d) for d in door_demos[:4]), door_demos[4]]
    ref, _ = align_segments(demos)
    assert [s.phase for s in ref] == [Phase.grasping]


def test_demos_without_interactions_are_a_clear_error(door_demos):
    empty = door_demos[0].model_copy(update={"interactions": []})
    with pytest.raises(SkillLearningError, match="no demo has a segment with an interaction"):
        learn_task([empty], reasoner=make_reasoner("offline", on_call=lambda c: None))


def test_grounded_demos_are_loaded_from_folders(tmp_path, door_demos):
    for d in door_demos[:2]:
        folder = tmp_path / d.demo_id
        folder.mkdir()
        d.save(folder)
    res = learn_task([tmp_path / d.demo_id for d in door_demos[:2]], task="open_door",
                     reasoner=make_reasoner("offline", on_call=lambda c: None))
    assert len(res.skills) == 2 and np.isfinite(res.skills[1].provenance.fit_error_m)


def test_cli_learn_list_show_forget(tmp_path, monkeypatch, door_demos):
    from typer.testing import CliRunner

    from main import app

    monkeypatch.setenv("VLMIMIC_MEMORY_PATH", str(tmp_path / "memory.sqlite"))
    monkeypatch.setenv("VLMIMIC_EMBEDDER_MODEL_PATH", str(tmp_path / "no-model"))  # lexical fallback: fast
    monkeypatch.setenv("COLUMNS", "200")
    for d in door_demos[:3]:
        (tmp_path / "demos" / d.demo_id).mkdir(parents=True)
        d.save(tmp_path / "demos" / d.demo_id)
    runner = CliRunner()
    out = runner.invoke(app, ["learn", str(tmp_path / "demos"), "--task", "open_door"])
    assert out.exit_code == 0, out.output
    assert "learned 'open_door' from 3 demos" in out.output and "arc" in out.output
    assert "lexical fallback" in out.output  # the user is told retrieval is lexical
    listing = runner.invoke(app, ["skills", "list"])
    assert listing.exit_code == 0 and "open_door.01.swing" in listing.output
    sid = next(w for w in listing.output.split() if w.startswith("open_door.01.swing"))
    shown = runner.invoke(app, ["skills", "show", sid])
    assert shown.exit_code == 0 and '"family": "arc"' in shown.output
    gone = runner.invoke(app, ["skills", "forget", sid])
    assert gone.exit_code == 0 and "removed plans: open_door" in gone.output
    missing = runner.invoke(app, ["skills", "show", sid])
    assert missing.exit_code == 2 and "no skill" in missing.output
    bad = runner.invoke(app, ["learn", str(tmp_path / "nothing-here")])
    assert bad.exit_code == 2 and "not a demo folder" in bad.output


def test_renders_are_made_for_the_reasoner_when_asked(tmp_path, door_demos):
    seen = []
    r = make_reasoner("offline", on_call=seen.append)
    learn_task(door_demos[:2], task="open_door", reasoner=r, render_dir=tmp_path / "renders")
    images = [c.images for c in seen if c.question in ("group_grasps", "fit_trajectory")]
    assert len(images) == 2 and all(len(i) == 1 and i[0].endswith(".png") for i in images)
    assert all((tmp_path / "renders").joinpath(p.split("/")[-1]).is_file() for i in images for p in i)


def _with_trajectory(d, mats, master_size, slave_size):
    """A copy of a synthetic wiping demo whose manipulation follows `mats` (pan frame) with given sizes."""
    from core.geometry import Pose

    inter = d.manipulations()[0]
    n = len(mats)
    new = inter.model_copy(update={"trajectory": [Pose.from_matrix(T) for T in mats],
                                   "frames": list(range(10, 10 + n)), "times": list(1 + np.arange(n) / 30.0)})
    objects = [o.model_copy(update={"bbox_size": tuple(master_size if o.name == "pan" else slave_size)})
               for o in d.objects]
    segs = [s.model_copy(update={"end_frame": 10 + n, "text": "use the sponge on the pan"}) if s.index == 1 else s
            for s in d.segments]
    return d.model_copy(update={"interactions": [d.interactions[0], new], "objects": objects, "segments": segs,
                                "n_frames": 10 + n})


def test_scrubs_of_different_stroke_counts_and_paces_are_learned_within_a_centimetre():
    from tests.tools.constraints.scrubs import BRUSH, PAN, scrub

    demos = [_with_trajectory(pan_demo(i), scrub(s, f, i), PAN, BRUSH)
             for i, (s, f) in enumerate([(4, 90), (6, 600), (5, 300), (5, 160), (4, 420)])]
    res = learn_task(demos, task="scrub_pan", reasoner=make_reasoner("offline", on_call=lambda c: None))
    skill = res.skills[1]
    assert skill.manipulation.program.family == "zigzag"
    assert skill.provenance.fit_error_m <= 0.01 and not skill.provenance.excluded_demos
    # the demonstrated sweep kept for comparison is one demo's strokes, not the blob their mean would be
    kp = np.array([p.position for p in skill.manipulation.keypoints])
    assert len(kp) == 40 and np.ptp(kp[:, 0]) > 0.09 and np.ptp(kp[:, 1]) > 0.09


def test_a_put_down_at_places_the_demos_choose_freely_is_checked_for_its_shape():
    from core.program import Waypoints

    rng = np.random.default_rng(5)
    demos = []
    for i in range(5):  # out of the pan, up, over to wherever the brush stood, down onto the table
        place = (rng.uniform(-0.1, 0.2), rng.uniform(0.16, 0.26), 0.036)
        prog = TrajectoryProgram(start=StartPose(position=(-0.05, 0.0, 0.045)), steps=[
            Line(direction=(0, 0, 1), distance=0.09), Waypoints(points=[(place[0], place[1], 0.14), place])])
        mats = matrices_at(prog, {"master": PAN_SIZE}, np.linspace(0, 1, 70))
        mats[:, :3, 3] += rng.normal(0, 0.001, (70, 3))
        demos.append(_with_trajectory(pan_demo(i), mats, PAN_SIZE, (0.07, 0.05, 0.13)))
    res = learn_task(demos, task="put_down", reasoner=make_reasoner("offline", on_call=lambda c: None))
    skill = res.skills[1]
    assert skill.provenance.fit_error_m <= 0.01
    assert any("free choice of place" in n for n in res.notes) and "free place" in skill.semantic
    assert skill.manipulation.free_place_spread_m is not None and skill.manipulation.free_place_spread_m > 0.02
    # a part of the master (a door, a drawer) has no free place: how far it ends up is the motion itself
    parts = [d.model_copy(update={"objects": [o.model_copy(update={"parent": "pan"}) if o.name == "sponge" else o
                                              for o in d.objects]}) for d in demos]
    with pytest.raises(SkillLearningError, match="fit error"):
        learn_task(parts, task="put_down", reasoner=make_reasoner("offline", on_call=lambda c: None))
    # the same demos without their spread of places: no such note, and a tight fit all the same
    same = [_with_trajectory(pan_demo(i), demos[0].manipulations()[0].matrices(), PAN_SIZE, (0.07, 0.05, 0.13))
            for i in range(3)]
    res = learn_task(same, task="put_down", reasoner=make_reasoner("offline", on_call=lambda c: None))
    assert not any("free choice of place" in n for n in res.notes) and res.skills[1].provenance.fit_error_m < 0.005
    assert res.skills[1].manipulation.free_place_spread_m is None

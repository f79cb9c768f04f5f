import numpy as np

from tools.constraints.render import render_grasps, render_grid, render_trajectory


def test_renders_write_pngs(tmp_path):
    g = render_grasps((0.1, 0.2, 0.3), np.array([[0, 0.05, 0.1], [0, 0.06, 0.1]]), np.array([[0, 0, -1], [0, 0, -1]]),
                      tmp_path / "g.png", title="grasps", groups=[0, 1])
    t = render_trajectory((0.3, 0.3, 0.05), [np.random.default_rng(0).normal(size=(10, 3)) * 0.05], tmp_path / "t.png")
    grid = render_grid((0.1, 0.2), tmp_path / "grid.png")
    for p in (g, t, grid):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.png.tmp*"))

"""`doctor` hardware/weights/LLM checks: bounded, contact only what is configured, never print secrets."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

import tools.doctor as doctor
from tests.fakes.realsense_fake import FakeRealSense
from tests.fakes.realsense_fake import install as install_realsense
from tests.tools.robot.test_panda import tcp_listener


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("VLMIMIC_HARDWARE__PANDA_HOST", "VLMIMIC_HARDWARE__REALSENSE_SERIAL", "VLMIMIC_HARDWARE__T_BASE_CAMERA",
                "OPENAI_API_KEY", "OPENAI_BASE_URL", "VLMIMIC_PERCEPTION__SAM_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VLMIMIC_CONFIG", str(tmp_path / "absent.toml"))
    install_realsense(monkeypatch, FakeRealSense(serials=[]))


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_no_hardware_reports_not_configured_and_contacts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    contacted: list[object] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: object) -> None:
        contacted.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    monkeypatch.setattr(socket.socket, "connect_ex", spy)
    checks = by_name(doctor.run_checks())
    assert contacted == []
    assert checks["robot"].status == "not configured"
    assert "nothing contacted" in checks["robot"].detail
    assert checks["realsense"].status == "missing"
    assert checks["camera calibration"].status == "not configured"
    assert checks["llm endpoint"].status == "not configured"
    assert checks["weights: SAM"].status == "not configured"
    assert checks["panda-py"].status in ("ok", "missing")


def test_panda_requested_without_address_is_an_error() -> None:
    assert by_name(doctor.run_checks(robot="panda"))["robot"].status == "error"


def test_configured_robot_is_probed_on_the_fci_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with tcp_listener() as (host, port, conns):
        monkeypatch.setattr("tools.robot.connectivity.FCI_PORT", port)
        check = by_name(doctor.run_checks(panda_host=host))["robot"]
        assert check.status == "ok" and f"{host}:{port}" in check.detail


def test_unreachable_robot_is_an_error_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMIMIC_HARDWARE__PANDA_HOST", "127.0.0.1")
    with tcp_listener() as (_, port, _):
        pass  # a port that was just freed: nothing listens there now
    monkeypatch.setattr("tools.robot.connectivity.FCI_PORT", port)
    t0 = time.monotonic()
    check = by_name(doctor.run_checks(timeout_s=2.0))["robot"]
    assert check.status == "error" and "refused" in check.detail
    assert time.monotonic() - t0 < 10


def test_a_hanging_check_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_check_calibration", lambda settings: time.sleep(5))
    t0 = time.monotonic()
    check = by_name(doctor.run_checks(timeout_s=0.3))["camera calibration"]
    assert check.status == "error" and "did not finish within 0.3 s" in check.detail
    assert time.monotonic() - t0 < 4


def test_realsense_devices_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    install_realsense(monkeypatch, FakeRealSense(serials=["f0012345"]))
    check = by_name(doctor.run_checks())["realsense"]
    assert check.status == "ok" and "f0012345" in check.detail


def test_missing_panda_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "panda_py", None)
    check = by_name(doctor.run_checks())["panda-py"]
    assert check.status == "missing" and "pip install -e .[real]" in check.detail


def test_llm_endpoint_never_shows_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://alice:hunter2@localhost:8000/v1?token=abc")
    check = by_name(doctor.run_checks())["llm endpoint"]
    assert check.status == "ok"
    assert "localhost:8000/v1" in check.detail and "API key set" in check.detail
    for secret in ("sk-very-secret-123", "hunter2", "alice", "abc"):
        assert secret not in check.detail


def test_weights_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = tmp_path / "sam.pth"
    monkeypatch.setenv("VLMIMIC_PERCEPTION__SAM_PATH", str(weights))
    assert by_name(doctor.run_checks())["weights: SAM"].status == "error"
    weights.write_bytes(b"x")
    assert by_name(doctor.run_checks())["weights: SAM"].status == "ok"


def test_calibration_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "vlmimic.toml"
    cfg.write_text("[hardware]\nT_base_camera = [[1,0,0,1.2],[0,1,0,0],[0,0,1,0.8],[0,0,0,1]]\n")
    monkeypatch.setenv("VLMIMIC_CONFIG", str(cfg))
    check = by_name(doctor.run_checks())["camera calibration"]
    assert check.status == "ok" and "(1.200, 0.000, 0.800)" in check.detail

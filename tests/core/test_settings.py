import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_environment_overrides_toml_and_defaults(tmp_path, monkeypatch):
    cfg = tmp_path / "vlmimic.toml"
    cfg.write_text('seed = 7\n[safety]\nmax_speed_factor = 0.3\n[llm]\nmodel = "from-toml"\n')
    monkeypatch.setenv("VLMIMIC_CONFIG", str(cfg))
    monkeypatch.setenv("VLMIMIC_LLM__MODEL", "from-env")
    s = load_settings()
    assert s.seed == 7
    assert s.safety.max_speed_factor == 0.3
    assert s.llm.model == "from-env"
    assert s.hardware.panda_host is None  # no robot address by default: nothing is contacted


def test_bad_value_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("VLMIMIC_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("VLMIMIC_SAFETY__MAX_SPEED_FACTOR", "3")
    with pytest.raises(ConfigError, match="safety.max_speed_factor"):
        load_settings()


def test_broken_toml_is_one_clear_error(monkeypatch, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("seed = = 1")
    monkeypatch.setenv("VLMIMIC_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_short_robot_address_variable_is_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("VLMIMIC_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("VLMIMIC_HARDWARE__PANDA_HOST", raising=False)
    monkeypatch.setenv("VLMIMIC_PANDA_HOST", "127.0.0.2")
    assert load_settings().hardware.panda_host == "127.0.0.2"
    monkeypatch.setenv("VLMIMIC_HARDWARE__PANDA_HOST", "127.0.0.3")  # the explicit nested form wins
    assert load_settings().hardware.panda_host == "127.0.0.3"

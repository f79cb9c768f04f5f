"""Settings: environment variables (VLMIMIC_*) over an optional TOML file over defaults.

The TOML file is `vlmimic.toml` in the working directory, or the path in VLMIMIC_CONFIG. Nested
groups use a double underscore in the environment: VLMIMIC_SAFETY__MAX_SPEED_FACTOR=0.3.
Secrets (API keys) are never stored here: the LLM client reads the standard OPENAI_API_KEY.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError


class SafetySettings(BaseModel):
    """Enforced by tools.robot.safety.SafeRobot around every Robot, simulated or real."""

    workspace_min: tuple[float, float, float] = (0.15, -0.6, 0.0)
    workspace_max: tuple[float, float, float] = (0.85, 0.6, 0.9)
    max_speed_factor: float = Field(0.5, gt=0, le=1.0)
    joint_margin_rad: float = Field(0.05, ge=0)
    max_grasp_force: float = Field(70.0, gt=0)
    confirm_first_motion: bool = True


class LLMSettings(BaseModel):
    model: str = "gpt-4o"
    structured_output: Literal["json_schema", "function_calling", "json_mode"] = "json_schema"
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    reask_attempts: int = Field(1, ge=0, description="re-asks after an answer fails the schema")
    temperature: float = 0.0


class PerceptionSettings(BaseModel):
    segmenter: Literal["channel", "grounded_sam"] = "channel"
    hand_tracker: Literal["channel", "mediapipe", "aruco"] = "channel"
    grounding_dino_path: Path | None = None
    sam_path: Path | None = None
    mediapipe_model_path: Path | None = None
    voxel_size_m: float = 0.004


class HardwareSettings(BaseModel):
    panda_host: str | None = None
    realsense_serial: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    # T_base_camera as a row-major 4x4 from `python main.py calibrate`; None until calibrated.
    T_base_camera: list[list[float]] | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VLMIMIC_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path(".vlmimic")
    runs_dir: Path = Path("runs")
    memory_path: Path = Path(".vlmimic/memory.sqlite")
    memory_url: str | None = Field(None, description="postgresql://... to share skills across a fleet")
    embedder_model_path: Path | None = None
    mujoco_gl: str | None = None
    seed: int = 0
    safety: SafetySettings = SafetySettings()
    llm: LLMSettings = LLMSettings()
    perception: PerceptionSettings = PerceptionSettings()
    hardware: HardwareSettings = HardwareSettings()

    @model_validator(mode="after")
    def _short_robot_address(self) -> Settings:
        # VLMIMIC_PANDA_HOST is the documented short form of VLMIMIC_HARDWARE__PANDA_HOST.
        short = os.environ.get("VLMIMIC_PANDA_HOST")
        if short and not self.hardware.panda_host:
            self.hardware.panda_host = short
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))


def config_path() -> Path:
    return Path(os.environ.get("VLMIMIC_CONFIG", "vlmimic.toml"))


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        if not path.is_file():
            return {}
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e


def load_settings(**overrides: Any) -> Settings:
    """Settings with explicit overrides on top; a bad value raises ConfigError naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {name!r}: {first['msg']} (env VLMIMIC_{name.upper().replace('.', '__')})") from e

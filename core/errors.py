"""Errors the user sees. Each carries one clear line; the CLI prints it without a traceback."""


class VLMimicError(Exception):
    """Base for errors that should reach the user as one line."""


class DemoFormatError(VLMimicError):
    """A demo folder is missing, malformed or inconsistent (the message names the file and frame)."""


class ConfigError(VLMimicError):
    """A setting is missing or invalid (the message names the setting)."""


class BackendUnavailable(VLMimicError):
    """An optional backend (renderer, model weights, hardware) is not usable here."""


class HardwareError(VLMimicError):
    """A robot or camera could not be reached or reported a fault."""


class SafetyViolation(VLMimicError):
    """A command was refused by the safety layer."""

"""Typed configuration: models and the YAML loader."""

from .loader import (BUILTIN_SNMP_PROFILES, SECRET_KEYS, config_warnings, inline_secrets, load_config, load_config_text,
                     parse_config)
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all

__all__ = ["load_config", "load_config_text", "config_warnings", "inline_secrets", "parse_config", "SECRET_KEYS", "BUILTIN_SNMP_PROFILES", *_models_all]

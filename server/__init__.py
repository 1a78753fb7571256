"""The central on-premises server. It never imports :mod:`kiosk`; both import :mod:`protocol`."""

from server.app import create_app
from server.config import ConfigError, ServerConfig, TurnConfig, load_config

__all__ = ["ConfigError", "ServerConfig", "TurnConfig", "create_app", "load_config"]

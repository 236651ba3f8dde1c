"""What the plugin keeps per process: the platform it was loaded into and its settings (read once)."""

from __future__ import annotations

from typing import Any

from shopologic.contracts import PluginError, PluginHost
from websocket_realtime_engine.config import Settings, SettingsError, load_settings


class PluginState:
    """Set by ``platform_loaded``; read by every other hook of the plugin."""

    platform: PluginHost | None = None
    credentials: dict[str, str] | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """The engine settings, read once per process (CLI flags win over the environment).

        A setting the engine cannot use is a :class:`~shopologic.contracts.PluginError`: the host
        shows it as one line, whichever hook or command read the settings first.
        """
        if self._settings is None:
            overrides: dict[str, Any] = dict(self.platform.overrides) if self.platform is not None else {}
            config_file = self.platform.settings.var_dir / "realtime.toml" if self.platform is not None else None
            try:
                settings = load_settings(config_file=config_file, **overrides)
            except SettingsError as exc:
                raise PluginError(str(exc)) from None
            self._settings = settings.with_credentials(**(self.credentials or {}))
        return self._settings

    def reset(self, platform: PluginHost | None, credentials: dict[str, str] | None = None) -> None:
        """Forget the settings read so far: a new platform, or new credentials."""
        self.platform = platform
        self.credentials = credentials
        self._settings = None


STATE = PluginState()

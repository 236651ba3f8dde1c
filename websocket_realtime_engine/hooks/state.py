"""What the plugin keeps per process: the platform it was loaded into and its settings (read once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from websocket_realtime_engine.config import Settings, load_settings

if TYPE_CHECKING:
    from shopologic.platform import Platform


class PluginState:
    """Set by ``platform_loaded``; read by every other hook of the plugin."""

    platform: Platform | None = None
    credentials: dict[str, str] | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        """The engine settings, read once per process (CLI flags win over the environment)."""
        if self._settings is None:
            overrides: dict[str, Any] = dict(self.platform.overrides) if self.platform is not None else {}
            config_file = self.platform.settings.var_dir / "realtime.toml" if self.platform is not None else None
            self._settings = load_settings(config_file=config_file, **overrides).with_credentials(
                **(self.credentials or {})
            )
        return self._settings

    def reset(self, platform: Platform | None, credentials: dict[str, str] | None = None) -> None:
        self.platform = platform
        self.credentials = credentials
        self._settings = None


STATE = PluginState()

"""The order-emitter test plugin's hooks, loaded by the host as ``shopologic_plugins.order_emitter.hooks``."""

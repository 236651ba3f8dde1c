"""The plugin's hook implementations: each translates one host call into one engine call."""

#!/usr/bin/env python3
"""Shopologic's entry point: initialise the plugin ecosystem, or run one CLI command.

``python bootstrap_plugins.py`` creates the platform database, discovers the plugin manifests
(``plugin.json``) and prints each plugin with its version and state; ``--help`` lists the commands.
"""

import sys

from shopologic.cli import main

if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run featviz from a checkout without installing it: ``python cli.py --help``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from featviz.cli import main  # noqa: E402

if __name__ == "__main__":
    main()

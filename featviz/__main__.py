import os
import sys

import featviz

# `python -m featviz` puts the current folder first on the import path; featviz is imported
# by now, so drop it: a stray ./matplotlib.py must never run in place of featviz's own imports
# (`--model` makes the folder importable only while it imports the user's module).
_here = os.path.dirname(os.path.dirname(os.path.abspath(featviz.__file__)))
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd()) or os.path.abspath(p or ".") == _here]

from featviz.cli import main  # noqa: E402

main()

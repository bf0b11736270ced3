# pytest: make `import mpx` and `import _support` work from any rootdir.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _support  # noqa: E402,F401  (sets sys.path and MPX_LIBRARY)

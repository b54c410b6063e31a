"""Root pytest configuration: notebooks run as quick, offline smoke runs.

nbval starts each notebook's kernel from this process, so the switches set here reach
the kernels. A value already in the environment wins (``CNNLAB_FAST=0 pytest notebooks``
executes the notebooks in full).
"""

import os

os.environ.setdefault("CNNLAB_FAST", "1")
os.environ.setdefault("CNNLAB_OFFLINE", "1")
# No progress-bar widgets in headless kernels' output; plain text bars are kept.
os.environ.setdefault("TQDM_MININTERVAL", "5")

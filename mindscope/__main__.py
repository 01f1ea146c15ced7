"""``python -m mindscope``."""

import sys

from mindscope.cli import main

sys.exit(main())

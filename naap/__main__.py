"""`python -m naap` (and `torchrun -m naap`) runs the command line."""
import sys

from naap.cli import main

sys.exit(main())

"""`python -m metalstm_np` is the `metalstm` command."""
import sys

from .cli import main

sys.exit(main())

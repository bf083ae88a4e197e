# Hand-written (not generated): `python -m fastai_memstream ...` runs the command-line entry point from nbs/09_cli.ipynb.
import sys
from fastai_memstream.cli import main
if __name__ == '__main__': sys.exit(main())

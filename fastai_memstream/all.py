# Hand-written (not generated), like fastai's `fastai.text.all`: `from fastai_memstream.all import *` brings the public names.
from .core import *
from .store import *
from .lm import *
from .memory import *
from .callback import *
from .squad import *
from .squad_fastai import *
from .distrib import *

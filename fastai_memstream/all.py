# Hand-written (not generated), like fastai's `fastai.text.all`: `from fastai_memstream.all import *` brings the public names.
from .core import *
from .store import *
from .text import *
from .subword import *
from .lm import *
from .lm_text import *
from .memory import *
from .callback import *
from .squad_read import *
from .squad_cache import *
from .squad import *
from .qa_eval import *
from .squad_fastai import *
from .memxl import *
from .distrib import *
from .hf_lm import *

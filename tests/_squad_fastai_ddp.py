"Run by tests/test_squad_fastai_distrib.py under torchrun: train a memory model through `learn.distrib_ctx()` and record what each rank saw"
import os, sys, json
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import torch
torch.set_num_threads(1)
from accelerate import DistributedDataParallelKwargs
from fastai.callback.core import Callback
from fastai.torch_core import set_seed, rank_distrib
import fastai.distributed
from transformers import XLNetConfig, XLNetForQuestionAnsweringSimple
from fastai_memstream.squad_fastai import *

cache_dir,out = sys.argv[1],sys.argv[2]
class Record(Callback):
    order = 13   # after MemoryCallback: sees the loader the batches really come from
    def before_fit(self): self.seen,self.model_types = {'train': [], 'valid': []},set()
    def before_batch(self): self.model_types.add(type(self.learn.model).__name__)
    def after_batch(self):
        fi = self.learn.yb[-1]
        self.seen['train' if self.training else 'valid'].append([int(i) for i in fi])

set_seed(0)
feats = SquadFeatures.from_cache(cache_dir, 'squad_v2', 'validation')
dls = SquadDataLoaders.from_features(feats, feats, bs=4, time_step_major=True, device='cpu')
model = MemoryQAModel(XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(feats.tokenizer))),
                      feats.mem_read_ids, feats.mem_write_ids)
rec = Record()
learn = squad_learner(dls, model, cbs=[rec])
with learn.distrib_ctx(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]):
    learn.fit(1, 1e-3)
is_ddp = rec.model_types == {'DistributedDataParallel'}
r = rank_distrib()
ids = {k: [feats.feats[i]['example_id'] if i >= 0 else None for b in v for i in b] for k,v in rec.seen.items()}
json.dump(dict(rank=r, world=int(os.environ.get('WORLD_SIZE', 1)), steps={k: len(v) for k,v in rec.seen.items()}, ids=ids,
               values=[float(x) for x in learn.recorder.values[-1]], ddp=is_ddp,
               backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None),
          open(os.path.join(out, f'rank{r}.json'), 'w'))

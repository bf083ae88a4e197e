"Run by tests/test_squad_fastai_distrib.py under torchrun: train through `learn.distrib_ctx()` (a memory model on time-step-major loaders, a plain model on window loaders) and record what each rank saw"
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
KEYS = ('exact', 'f1', 'total', 'HasAns_total', 'NoAns_total')
class Record(Callback):
    "What the batches really were: loader type, feature indices (-1: empty or repeated), model type"
    def before_fit(self): self.seen,self.model_types,self.dl_types = {'train': [], 'valid': []},set(),set()
    def before_batch(self): self.model_types.add(type(self.learn.model).__name__); self.dl_types.add(type(self.learn.dl).__name__)
    def after_batch(self):
        fi = self.learn.yb[-1]
        self.seen['train' if self.training else 'valid'].append([int(i) for i in fi])

def run(dls, model):
    rec = Record()
    learn = squad_learner(dls, model, cbs=[rec], metrics=squad_metrics(keys=KEYS, null_threshold=1e9))   # always a span: scores that tell models apart
    with learn.distrib_ctx(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]):
        learn.fit(1, 1e-3)
    ids = {k: [feats.feats[i]['example_id'] if i >= 0 else None for b in v for i in b] for k,v in rec.seen.items()}
    res = dict(steps={k: len(v) for k,v in rec.seen.items()}, ids=ids, values=[float(x) for x in learn.recorder.values[-1]],
               ddp=rec.model_types == {'DistributedDataParallel'}, dl_types=sorted(rec.dl_types))
    learn.remove_cb(rec)
    with learn.no_bar(), learn.no_logging(): res['whole'] = [float(x) for x in learn.validate()]   # one process, the whole validation set
    return res

set_seed(0)
feats = SquadFeatures.from_cache(cache_dir, 'squad_v2', 'validation')
xlnet = lambda: XLNetForQuestionAnsweringSimple(XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64, vocab_size=len(feats.tokenizer)))
res = {}
res['memory'] = run(SquadDataLoaders.from_features(feats, feats, bs=4, time_step_major=True, device='cpu'),
                    MemoryQAModel(xlnet(), feats.mem_read_ids, feats.mem_write_ids))
res['windows'] = run(SquadDataLoaders.from_features(feats, feats, bs=8, device='cpu'), xlnet())
r = rank_distrib()
json.dump(dict(rank=r, world=int(os.environ.get('WORLD_SIZE', 1)), runs=res,
               backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None),
          open(os.path.join(out, f'rank{r}.json'), 'w'))

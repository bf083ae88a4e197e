"Run by tests/test_squad_fastai_distrib.py under torchrun: the guide's `XLNetRecurrentTrainer(config).train()` with memory, and what each rank trained on"
import os, sys, json
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import torch
torch.set_num_threads(1)
from fastai.callback.core import Callback
from fastai.torch_core import rank_distrib
from transformers import XLNetConfig
from fastai_memstream.squad_fastai import TrainingConfig, XLNetRecurrentTrainer

cache_dir,out = sys.argv[1],sys.argv[2]
class Record(Callback):
    "The model type and the examples of each training batch (None: an empty slot or a repeated document)"
    def before_fit(self): self.ids,self.model_types = [],set()
    def before_batch(self): self.model_types.add(type(self.learn.model).__name__)
    def after_batch(self):
        if self.training: self.ids += [self.dl.feats.feats[int(i)]['example_id'] if i >= 0 else None for i in self.learn.yb[-1]]

cfg = TrainingConfig(cache_dir=cache_dir, dataset_name='squad_v2', train_split='validation', eval_split='validation',
                     memory_num_tokens=2, model_name_or_config=XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64),
                     num_epochs=1, train_batch_size=4, learning_rate=1e-3, output_dir=os.path.join(out, 'model'), progress=False)
trainer = XLNetRecurrentTrainer(cfg)
learn = trainer.prepare()
rec = Record(); learn.add_cb(rec)
trainer.train()
r = rank_distrib()
json.dump(dict(rank=r, world=int(os.environ.get('WORLD_SIZE', 1)), ids=rec.ids, ddp=rec.model_types == {'DistributedDataParallel'},
               metrics={k: float(v) for k,v in trainer.metrics.items()}),
          open(os.path.join(out, f'trainer{r}.json'), 'w'))

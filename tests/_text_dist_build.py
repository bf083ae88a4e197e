"One rank of distributed text-store builds (run by tests/test_text_dist.py under torchrun): every builder in turn, results in rank<r>.json"
import json, os, sys, traceback, warnings
from pathlib import Path
import numpy as np, pandas as pd
import torch.distributed as dist

def texts(n=57, seed=0):
    "Texts of words drawn with skewed frequencies (many ties in the counts), capitals and a few empty ones"
    rng = np.random.default_rng(seed)
    words = [f'w{i}' for i in range(60)] + ['The', 'And', 'ok']
    res = [' '.join(words[j] for j in (rng.zipf(1.4, int(k)) % len(words))) for k in rng.integers(1, 25, n)]
    res[3] = res[40] = ''
    return res

def builds(root:Path):
    "`{name: callable(cache_dir, **kw)}`: the builds compared between two ranks and one process (kw: distributed=False for one process)"
    from fastai.text.all import BaseTokenizer
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.core import sample_data
    t = texts()
    base = dict(n_workers=0, progress=False)
    def folder():
        return root/'corpus'   # `write_corpus`, by the test before torchrun starts: ranks writing it together would read half-written files
    def hf_tok():
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(sample_data('bert-base-uncased'))
    def hf_ds():
        import datasets
        return datasets.Dataset.from_dict({'text': t})
    df = pd.DataFrame({'text': t, 'b': t[::-1]})
    return {
        'list_spacy': lambda d, **kw: DiskLMDataset.from_texts(t, d, min_freq=2, **base, **kw),
        'list_workers': lambda d, **kw: DiskLMDataset.from_texts(t, d, tok=BaseTokenizer(), min_freq=1, max_vocab=30, n_workers=1, chunk_size=4, progress=False, **kw),
        'gen_blocks': lambda d, **kw: DiskLMDataset.from_texts((x for x in t), d, tok=BaseTokenizer(), min_freq=2, source_id='texts-0', chunk_size=5, shard_docs=7, **base, **kw),
        'vocab_given': lambda d, **kw: DiskLMDataset.from_texts(t[10:], d, vocab=['xxunk', 'xxpad', 'w0', 'w1', 'w2', 'w3'], tok=BaseTokenizer(), **base, **kw),
        'df_two_cols': lambda d, **kw: DiskLMDataset.from_df(df, d, text_col=['text', 'b'], tok=BaseTokenizer(), min_freq=1, shard_docs=10, **base, **kw),
        'df_splits': lambda d, **kw: DiskLMDataset.from_df(df, d, tok=BaseTokenizer(), splits={'train': range(0, 45), 'valid': range(45, 57)}, **base, **kw),
        'folder': lambda d, **kw: DiskLMDataset.from_folder(folder(), d, tok=BaseTokenizer(), min_freq=1, **base, **kw),
        'hf_tok': lambda d, **kw: DiskLMDataset.from_texts(t, d, tok=hf_tok(), **base, **kw),
        'hf_tok_splits': lambda d, **kw: DiskLMDataset.from_texts(t, d, tok=hf_tok(), splits={'train': range(0, 50), 'valid': [50, 3, 51]}, **base, **kw),
        'hf_dataset': lambda d, **kw: DiskLMDataset.from_hf(hf_ds(), d, tok=BaseTokenizer(), min_freq=2, **base, **kw),
        'dls_from_df': lambda d, **kw: dls(df, d, **kw),
        'bad_text': lambda d, **kw: DiskLMDataset.from_texts(t[:50] + [None] + t[51:], d, tok=BaseTokenizer(), **base, **kw),   # text 50: rank 1's share
        'bad_text_hf': lambda d, **kw: DiskLMDataset.from_texts(t[:50] + [None] + t[51:], d, tok=hf_tok(), **base, **kw),
    }

def write_corpus(root:Path):
    "The text files of the 'folder' build"
    t = texts()
    (root/'corpus'/'a').mkdir(parents=True, exist_ok=True)
    for i,x in enumerate(t[:11]): (root/'corpus'/'a'/f'{i:02d}.txt').write_text(x, encoding='utf-8')

def dls(df, d, distributed=None):
    from fastai.text.all import BaseTokenizer
    from fastai_memstream.lm import DiskLMDataLoaders
    if distributed is False: raise NotImplementedError   # the one-process side is built by the test with DiskLMDataLoaders itself
    x = DiskLMDataLoaders.from_df(df, d, text_col='text', valid_pct=0.25, seed=3, tok_tfm=BaseTokenizer(), min_freq=1, n_workers=0, bs=2, seq_len=5, progress=False)
    return {'train': x.train.dataset, 'valid': x.valid.dataset}

def summary(ds)->dict:
    if isinstance(ds, dict): return {k: summary(v) for k,v in ds.items()}
    return dict(path=str(ds.path), built=ds.built, n_shards=ds.n_shards, n_docs=ds.n_docs)

def main():
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    which = sys.argv[3].split(',') if len(sys.argv) > 3 else None
    warnings.simplefilter('ignore')
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    res = {}
    for name,f in builds(root).items():
        if which and name not in which: continue
        try: res[name] = summary(f(root/name))
        except Exception as e: res[name] = dict(error=type(e).__name__, msg=str(e), tb=traceback.format_exc())
    (out/f'rank{rank}.json').write_text(json.dumps(res))
    dist.destroy_process_group()

if __name__ == '__main__': main()

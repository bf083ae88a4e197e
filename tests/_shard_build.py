"One rank of a distributed store build (run by tests/test_shard_store.py under torchrun, or as a plain process with RANK/WORLD_SIZE set)"
import json, os, sys, time, signal, traceback
from pathlib import Path
import numpy as np, torch
import torch.distributed as dist

def corpus(n=300, seed=0):
    "Documents of token ids (vocab 70,000: uint32), a few of them empty"
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 70_000, int(k)) for k in rng.integers(0, 60, n)]
    docs[5] = np.zeros(0, dtype=np.int64)
    return docs

def word_corpus(n=120, seed=0):
    "Texts of words drawn with skewed frequencies (many ties in the counts)"
    rng = np.random.default_rng(seed)
    words = [f'w{i}' for i in range(80)]
    return [' '.join(words[j] for j in (rng.zipf(1.5, int(k)) % 80)) for k in rng.integers(1, 30, n)]

def vocab_of(count):
    from fastai.text.data import make_vocab
    return make_vocab(count, min_freq=2)

def build_words(texts, store, **kw):
    "The pattern a text builder follows: count words in this rank's share, agree on the vocabulary through torch.distributed, write the shard"
    from collections import Counter
    from fastai_memstream.store import DiskLMDataset, _dist_ctx, _share
    from fastai_memstream.distrib import _sharded_build
    from fastai_memstream.core import fingerprint
    ctx = _dist_ctx(True)
    def write(sw):
        r = _share(len(texts), sw.rank, sw.world)
        got = [None]*sw.world
        dist.all_gather_object(got, Counter(w for i in r for w in texts[i].split()))
        total = Counter()
        for c in got: total.update(c)   # in rank order: first appearances in document order, as one process counts them
        sw.vocab = vocab_of(total); sw.vocab_size = len(sw.vocab)
        o2i = {w:i for i,w in enumerate(sw.vocab)}
        if sw.want(sw.rank):
            w = sw.open(sw.rank)
            for i in r: w.add(np.array([o2i.get(t, 0) for t in texts[i].split()]), i)
            sw.close(sw.rank, w)
        return sw.world
    return _sharded_build(DiskLMDataset, store, fingerprint('words', texts), write, ('range', ctx[1]), ctx, params=dict(builder='words'), **kw)

class Dying(list):
    "A list whose `die_at`-th document kills this process (SIGKILL: no cleanup, no exception)"
    die_at = None
    def __getitem__(self, i):
        if i == self.die_at: os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(i)

def main():
    store, out, kind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    opts = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    from fastai_memstream.store import DiskLMDataset
    docs = corpus(opts.get('n', 300))
    if 'bad_doc' in opts: docs[opts['bad_doc']] = [1.5, 2.5]
    if kind == 'gen': docs = (d for d in docs)
    elif opts.get('die_rank') == rank:
        docs = Dying(docs); docs.die_at = opts['die_at']
    if 'slow_rank' in opts and opts['slow_rank'] == rank: time.sleep(opts['slow_s'])
    kw = dict(vocab_size=70_000, progress=False, timeout=opts.get('timeout', 60))
    if kind == 'gen': kw.update(source_id='corpus-0', shard_docs=opts.get('shard_docs', 32))
    res, t0 = dict(rank=rank), time.monotonic()
    try:
        if kind == 'words': ds = build_words(word_corpus(), store, timeout=60)
        else: ds = DiskLMDataset.from_token_docs(docs, store, **kw)
        res.update(built=ds.built, reused=ds.reused_shards, n_shards=ds.n_shards, version=ds.meta['format_version'],
                   content=ds.__getstate__()['content'], n_docs=ds.n_docs, total=ds.total_tokens)
    except Exception as e:
        res.update(error=type(e).__name__, msg=str(e), tb=traceback.format_exc())
    res['elapsed'] = time.monotonic() - t0
    (out/f'rank{rank}.json').write_text(json.dumps(res))
    sys.stdout.flush(); os._exit(0)   # no destroy_process_group: a peer may be dead

if __name__ == '__main__': main()

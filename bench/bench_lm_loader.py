"""LM loader alone: batches/s and memory growth of `DiskLMDataLoader` against fastai's `LMDataLoader` on the same documents.

    python bench/bench_lm_loader.py                 # 20M and 50M tokens, bs 64, seq_len 72, shuffled
    python bench/bench_lm_loader.py --quick         # 0.5M tokens (smoke test)
    python bench/bench_lm_loader.py --sizes 20 --repeat 3    # DiskLMDataLoader one-file vs sharded: 3 runs each, alternating, best kept

Each (corpus, loader) runs in a fresh process. Memory is the growth of the process's anonymous resident memory (heap and tensors,
/proc/self/status RssAnon) from just after the imports to the end of the timed batches; pages of the memory-mapped token file are
file-backed page cache and are reported apart (RssFile). fastai's side gets the documents as int64 tensors, as `TextDataLoaders`
hands them to `LMDataLoader`; building them counts towards its memory. Two floors without fastai's DataLoader around them: the
streams read in order (one fancy index into the uint16 file per batch, no shuffling), and nanoGPT's `get_batch` (bs random windows
per batch: no streams, no documents).

Sharded stores: the same documents are also written as the `--shards` shards (default 2) that as many torch.distributed ranks write
(built in one process by `fastai_memstream.distrib._sharded_here`), and `DiskLMDataLoader` reads both stores in the same run; the
"× one-file" column is the sharded store's batches/s over the one-file store's. Both run `--repeat` times (default 1), alternating,
and the best run of each is reported: on a shared machine the ratio of single runs moves by ±10%.
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import synth_store, synth_sharded, proc_mem, run_fresh, table, machine, DEFAULT_CACHE

def worker(side, store, n_batches, bs, seq_len):
    import numpy as np, torch
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.lm import DiskLMDataLoader
    from fastai.text.data import LMDataLoader
    ds = DiskLMDataset(store)
    m0 = proc_mem(smaps=False)
    peak = dict(m0)
    def upd():
        m = proc_mem(smaps=False)   # /proc/self/status only: cheap enough not to show in the timings
        for k in ('anon_mb', 'file_mb', 'rss_mb'): peak[k] = max(peak[k], m[k])
    t0 = time.perf_counter()
    if side == 'memstream':
        dl = DiskLMDataLoader(ds, bs=bs, seq_len=seq_len, shuffle=True, seed=0)
        it = iter(dl)
    elif side == 'fastai':
        o = ds.doc_offsets
        docs = [torch.from_numpy(ds.data[o[i]:o[i+1]].astype(np.int64)) for i in range(ds.n_docs)]
        t0 = time.perf_counter()   # the tensors are the input fastai expects: building them is not loader time (but is memory)
        dl = LMDataLoader(docs, bs=bs, seq_len=seq_len, shuffle=True)
        it = iter(dl)
    elif side == 'gather':
        tok = np.asarray(ds.data)
        bl = (ds.total_tokens - 1)//bs
        rows, ar = np.arange(bs)*bl, np.arange(seq_len+1)
        n_b = bl//seq_len
        def gen():
            for i in range(n_b):
                blk = tok[(rows + i*seq_len)[:,None] + ar]
                yield torch.from_numpy(blk[:,:-1].astype(np.int64)), torch.from_numpy(blk[:,1:].astype(np.int64))
        it,dl = gen(),None
    elif side == 'windows':     # nanoGPT's get_batch: bs random windows of the file per batch (no streams, no documents)
        tok = np.asarray(ds.data)
        rng, ar = np.random.default_rng(0), np.arange(seq_len+1)
        def gen():
            while True:
                blk = tok[rng.integers(0, ds.total_tokens - seq_len - 1, bs)[:,None] + ar]
                yield torch.from_numpy(blk[:,:-1].astype(np.int64)), torch.from_numpy(blk[:,1:].astype(np.int64))
        it,dl = gen(),None
    n = 0
    for b in it:
        n += 1
        if n % 100 == 0: upd()
        if n >= n_batches: break
    dt = time.perf_counter() - t0
    upd()
    return dict(side=side, n=n, secs=dt, bps=n/dt, anon_growth_mb=peak['anon_mb'] - m0['anon_mb'],
                file_growth_mb=peak['file_mb'] - m0['file_mb'], anon0_mb=m0['anon_mb'])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small corpora, few batches (smoke test)')
    p.add_argument('--sizes', type=float, nargs='*', default=None, help='corpus sizes in millions of tokens (default 20 50)')
    p.add_argument('--bs', type=int, default=64); p.add_argument('--seq-len', type=int, default=72)
    p.add_argument('--batches', type=int, default=None, help='batches timed per run (default: one epoch, at most 3000 for fastai)')
    p.add_argument('--shards', type=int, default=2, help='shards of the sharded store read by DiskLMDataLoader (below 2: no sharded store)')
    p.add_argument('--repeat', type=int, default=1, help='runs of DiskLMDataLoader on each store, alternating; the best is reported')
    p.add_argument('--cache', default=str(DEFAULT_CACHE))
    p.add_argument('--json', default=None, help='also write the results to this JSON file')
    p.add_argument('--worker', nargs=5, metavar=('SIDE', 'STORE', 'N', 'BS', 'SEQ_LEN'), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        side, store, n, bs, sl = a.worker
        print(json.dumps(worker(side, store, int(n), int(bs), int(sl)))); return
    sizes = a.sizes or ([0.5] if a.quick else [20, 50])
    rows = []
    for sz in sizes:
        ds = synth_store(int(sz*1e6), a.cache)
        sh = synth_sharded(int(sz*1e6), a.shards, a.cache) if a.shards > 1 else None
        n_ep = ((ds.total_tokens-1)//a.bs)//a.seq_len
        res,runs = {},{}
        for side in ('fastai', 'gather', 'windows'):
            nb = a.batches or (min(n_ep, 300 if a.quick else 3000) if side == 'fastai' else n_ep)
            res[side] = run_fresh(__file__, '--worker', side, ds.path, nb, a.bs, a.seq_len)
        pair = [('memstream', ds.path)] + ([('sharded', sh.path)] if sh is not None else [])
        for _ in range(max(a.repeat, 1)):   # alternating, so that both stores see the same spells of a busy machine
            for side,path in pair: runs.setdefault(side, []).append(run_fresh(__file__, '--worker', 'memstream', path, a.batches or n_ep, a.bs, a.seq_len))
        for side,rs in runs.items(): res[side] = max(rs, key=lambda r: r['bps'])
        f = res['fastai']
        for side,name in (('fastai', "fastai LMDataLoader"), ('memstream', "DiskLMDataLoader"), ('sharded', f"DiskLMDataLoader, {a.shards} shards"),
                          ('gather', "memmap gather, streams in order"), ('windows', "memmap gather, random windows")):
            if side not in res: continue
            r = res[side]
            rows.append(dict(tokens=f"{ds.total_tokens/1e6:.1f}M", docs=ds.n_docs, loader=name, batches=r['n'], bps=r['bps'],
                             runs=', '.join(f"{x['bps']:.0f}" for x in runs.get(side, [r])), speed=r['bps']/f['bps'],
                             vs_one=r['bps']/res['memstream']['bps'] if side in runs else None,
                             anon=r['anon_growth_mb'], anon_ratio=r['anon_growth_mb']/max(f['anon_growth_mb'], 1e-9), file=r['file_growth_mb']))
        print(f"done {sz}M tokens", file=sys.stderr)
    print(f"LM loader alone, bs={a.bs}, seq_len={a.seq_len}, shuffled by document; floors without a DataLoader: the streams in order, "
          f"and nanoGPT's random windows; DiskLMDataLoader best of {max(a.repeat, 1)} run(s) per store; {machine()}")
    print(table(rows, [('tokens','tokens',''), ('docs','documents',','), ('loader','loader',''), ('batches','batches timed',','),
                       ('runs','batches/s (runs)',''), ('bps','batches/s','.0f'), ('speed','× fastai','.1f'), ('vs_one','× one-file','.3f'),
                       ('anon','anon. growth MB','.1f'),
                       ('anon_ratio','÷ fastai','.3f'), ('file','file-backed MB','.1f')]))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()

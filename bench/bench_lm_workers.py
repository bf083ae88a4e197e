"""Worker memory with `num_workers=2`: `DiskLMDataLoader` against fastai's `LMDataLoader` on the same documents, fork and spawn.

    python bench/bench_lm_workers.py              # 20M tokens
    python bench/bench_lm_workers.py --quick      # 1M tokens, fork only

Each (loader, start method) runs in a fresh process, iterates shuffled batches (bs 64, seq_len 72) with two workers and, mid-epoch,
reads each worker's memory: for a spawned worker its anonymous resident memory (RssAnon, a fresh interpreter, about 400 MB of it
PyTorch and fastai imports whatever the loader), for a forked worker its private dirty pages (what it wrote itself: pages it
shares copy-on-write with the main process are not its own). File-backed pages (the memory-mapped token file) are page cache.
Shared memory is reported apart: PyTorch's multiprocessing moves the tensors it sends to spawned workers (fastai's documents) into
shared memory segments rather than copying them into each worker's heap. `idle worker` is the same measure for a process of the same
start method that imported the libraries and holds no data; `worker data` is what the loader adds to it (measure + shared − idle).
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import synth_store, proc_mem, run_fresh, table, machine, DEFAULT_CACHE

def _idle(q):
    import fastai.text.data, fastai_memstream.lm
    q.put(proc_mem())

def idle_worker(ctx)->dict:
    "Memory of a worker-like process of start method `ctx` that imported the libraries and holds no data"
    import multiprocessing as mp
    c = mp.get_context(ctx)
    if ctx == 'fork':
        import fastai.text.data, fastai_memstream.lm
    q = c.Queue(); p = c.Process(target=_idle, args=(q,)); p.start(); r = q.get(); p.join()
    return r

def worker(side, ctx, store, at, strategy='default'):
    if side == 'idle': return idle_worker(ctx)
    import numpy as np, torch, psutil, multiprocessing
    if strategy != 'default': torch.multiprocessing.set_sharing_strategy(strategy)
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.lm import DiskLMDataLoader
    from fastai.text.data import LMDataLoader
    ds = DiskLMDataset(store)
    if side == 'fastai':
        multiprocessing.set_start_method(ctx, force=True)   # fastai's DataLoader uses the default start method
        o = ds.doc_offsets
        docs = [torch.from_numpy(ds.data[o[i]:o[i+1]].astype(np.int64)) for i in range(ds.n_docs)]
        dl = LMDataLoader(docs, bs=64, seq_len=72, shuffle=True, num_workers=2)
    else: dl = DiskLMDataLoader(ds, bs=64, seq_len=72, shuffle=True, seed=0, num_workers=2, mp_context=ctx)
    t0 = time.time()
    for i,b in enumerate(dl):
        if i == min(at, len(dl)-2):
            helpers = ('resource_tracker', 'torch_shm_manager')    # multiprocessing's and torch's helper processes are not workers
            kids = [k for k in psutil.Process().children(recursive=True) if not any(h in ' '.join(k.cmdline()) for h in helpers)]
            assert len(kids) == 2, [k.cmdline() for k in kids]
            ws = [proc_mem(k.pid) for k in kids]
            main = proc_mem()
            break
    return dict(side=side, ctx=ctx, workers=ws, main=main, secs=time.time()-t0, batches=i+1, strategy=strategy)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--size', type=float, default=None, help='corpus size in millions of tokens (default 20)')
    p.add_argument('--ctx', nargs='*', default=None, help="start methods (default fork spawn)")
    p.add_argument('--cache', default=str(DEFAULT_CACHE)); p.add_argument('--json', default=None)
    p.add_argument('--worker', nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        side, ctx, store, at, strat = a.worker
        print(json.dumps(worker(side, ctx, store, int(at), strat))); return
    size, ctxs = a.size or (1 if a.quick else 20), a.ctx or (['fork'] if a.quick else ['fork', 'spawn'])
    ds = synth_store(int(size*1e6), a.cache)
    rows = []
    for ctx in ctxs:
        at = 20 if a.quick else 200
        res, failed = {'memstream': run_fresh(__file__, '--worker', 'memstream', ctx, ds.path, at, 'default')}, None
        try: res['fastai'] = run_fresh(__file__, '--worker', 'fastai', ctx, ds.path, at, 'default')
        except RuntimeError as e:
            # sending one tensor per document to spawned workers needs one shared-memory file descriptor each
            failed = 'Too many open files' if 'Too many open files' in str(e) else str(e).splitlines()[-1][:80]
            res['fastai'] = run_fresh(__file__, '--worker', 'fastai', ctx, ds.path, at, 'file_system')
        key = 'private_dirty_mb' if ctx == 'fork' else 'anon_mb'
        idle = run_fresh(__file__, '--worker', 'idle', ctx, ds.path, at, 'default')[key]
        fw = np.mean([w[key] + w['shmem_mb'] for w in res['fastai']['workers']]) - idle
        for s,name in (('fastai', 'fastai LMDataLoader'), ('memstream', 'DiskLMDataLoader')):
            r = res[s]
            if s == 'fastai' and failed: name += f" (default sharing failed: {failed}; rerun with sharing strategy 'file_system')"
            w = np.mean([x[key] for x in r['workers']])
            data = np.mean([x[key] + x['shmem_mb'] for x in r['workers']]) - idle
            rows.append(dict(ctx=ctx, side=name, metric='private dirty' if ctx == 'fork' else 'anonymous (RssAnon)', worker=w, idle=idle,
                             data=data, ratio=data/fw,
                             wshm=np.mean([x['shmem_mb'] for x in r['workers']]), wfile=np.mean([x['file_mb'] for x in r['workers']]),
                             main_anon=r['main']['anon_mb'], main_shm=r['main']['shmem_mb'], n=len(r['workers'])))
        print(f"done {ctx}", file=sys.stderr)
    print(f"Worker memory, num_workers=2, {ds.total_tokens/1e6:.1f}M tokens in {ds.n_docs:,} documents, bs 64, seq_len 72, shuffled; {machine()}")
    print(table(rows, [('ctx','start',''), ('side','loader',''), ('metric','per-worker measure',''), ('worker','MB per worker','.1f'),
                       ('wshm','shared-memory MB per worker','.1f'), ('idle','idle worker MB','.1f'),
                       ('data','worker data MB (measure + shared − idle)','.1f'), ('ratio','÷ fastai','.3f'), ('wfile','file-backed MB per worker','.1f'),
                       ('main_anon','main anon. MB','.0f'), ('main_shm','main shared-memory MB','.0f')]))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

import numpy as np
if __name__ == '__main__': main()

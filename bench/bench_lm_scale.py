"""LM store at scale: build, open and one shuffled epoch of a store of synthetic ids, at 100M and 1B tokens; sharded vs one-file loader speed.

    python bench/bench_lm_scale.py                    # 100M and 1B tokens (~2 GB on disk), and sharded vs one-file at 20M
    python bench/bench_lm_scale.py --quick            # 1M tokens, sharded vs one-file at 1M, one run each (smoke test)
    python bench/bench_lm_scale.py --sizes 100M --dir /big/disk/tmp
    python bench/bench_lm_scale.py --sizes none --shard-tokens 20M     # the sharded comparison alone

Ids are uniform in 0..49,999 (vocabulary 50,000: uint16), in documents of log-normal length (median ~245 tokens), made and
written a chunk at a time by `DiskLMDataset.from_token_docs` from a generator. Every phase runs in a fresh process:
- build: wall time, peak RSS and peak anonymous memory of the process (sampled every 50 ms), size of the store on disk;
- open: `DiskLMDataset(path)` with checksums (reads every byte once: the first open in a process);
- epoch: one shuffled epoch of `DiskLMDataLoader(bs=64, seq_len=72)`: batches/s, and the growth of anonymous memory (heap, tensors;
  /proc/self/status RssAnon) from after the open to the end; file-backed resident memory (the page cache mapped by the process) apart.
The sharded comparison builds the same documents as one file and as 2 shards (what 2 ranks write) and times a full shuffled epoch
of each, 3 epochs per process, 3 processes each, alternating (the best is compared); `DiskLMDataLoader` gathers a sharded store's
batches from `ShardedTokens.joint`, the shards' gaps folded into the epoch's stream map. Stores are deleted at the end unless --keep.
"""
import argparse, json, os, shutil, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import proc_mem, PeakSampler, run_fresh, table, machine

VOCAB = 50_000

def parse_n(s:str)->int:
    s = s.strip().upper(); m = {'K': 10**3, 'M': 10**6, 'B': 10**9, 'G': 10**9}
    return int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s)

def synth_docs(n_tokens:int, seed:int=0, chunk:int=1<<22):
    "Documents of uniform ids, made a chunk of tokens at a time (memory bounded by the chunk, never by the corpus)"
    import numpy as np
    rng,made = np.random.default_rng(seed),0
    while made < n_tokens:
        k = min(chunk, n_tokens - made)
        toks = rng.integers(0, VOCAB, k, dtype=np.uint16)
        lens = rng.lognormal(5.5, 1.0, k//100 + 10).astype(np.int64) + 1
        cut = np.cumsum(lens); cut = cut[cut < k]
        yield from np.split(toks, cut)
        made += k

def dir_bytes(p): return sum(f.stat().st_size for f in Path(p).rglob('*') if f.is_file())

def build(path, n_tokens):
    from fastai_memstream.store import DiskLMDataset
    t0 = time.perf_counter()
    with PeakSampler(children=False) as ps:
        ds = DiskLMDataset.from_token_docs(synth_docs(n_tokens), path, vocab_size=VOCAB, progress=False, source_id=f'scale-{n_tokens}',
                                           force_rebuild=True, distributed=False)
    return dict(build_s=time.perf_counter() - t0, peak_rss_mb=ps.peak['rss_mb'], peak_anon_mb=ps.peak['anon_mb'], n_docs=ds.n_docs,
                tokens=ds.total_tokens, disk_mb=dir_bytes(path)/2**20, dtype=ds.dtype.name)

def epoch(path, bs=64, seq_len=72, epochs=1):
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.lm import DiskLMDataLoader as DL   # imports torch and fastai before the first reading
    m0 = proc_mem(smaps=False)
    t0 = time.perf_counter(); ds = DiskLMDataset(path); open_s = time.perf_counter() - t0
    m1 = proc_mem(smaps=False)
    dl = DL(ds, bs=bs, seq_len=seq_len, shuffle=True, seed=0)
    peak,n = dict(m1),0
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x,y in dl:
            n += 1
            if n % 2000 == 0:
                m = proc_mem(smaps=False)
                for k in ('anon_mb', 'file_mb'): peak[k] = max(peak[k], m[k])
    dt = time.perf_counter() - t0
    m2 = proc_mem(smaps=False)
    for k in ('anon_mb', 'file_mb'): peak[k] = max(peak[k], m2[k])
    return dict(open_s=open_s, open_anon_mb=m1['anon_mb'] - m0['anon_mb'], batches=n, epoch_s=dt, batches_s=n/dt,
                anon_growth_mb=peak['anon_mb'] - m1['anon_mb'], file_rss_mb=peak['file_mb'], shards=ds.n_shards)

def shard_pair(folder, n_tokens):
    "The same documents as a one-file store and as a 2-shard store"
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.distrib import _sharded_here
    docs = list(synth_docs(n_tokens, seed=1))
    DiskLMDataset.from_token_docs(docs, Path(folder)/'one', vocab_size=VOCAB, progress=False, force_rebuild=True, distributed=False)
    _sharded_here(docs, Path(folder)/'two', 2, vocab_size=VOCAB)
    return dict(ok=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true'); p.add_argument('--keep', action='store_true')
    p.add_argument('--sizes', default=None, help='comma-separated token counts, e.g. 100M,1B')
    p.add_argument('--shard-tokens', default=None, help='size of the sharded vs one-file comparison (0: skip)')
    p.add_argument('--dir', default='/tmp/fastai_memstream_scale')
    p.add_argument('--json', default=None, help='also write the rows to this JSON file')
    p.add_argument('--phase', nargs='*', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.phase:   # a fresh process for one phase
        ph, path, *rest = a.phase
        res = dict(build=lambda: build(path, int(rest[0])), epoch=lambda: epoch(path, epochs=int(rest[0]) if rest else 1), pair=lambda: shard_pair(path, int(rest[0])))[ph]()
        print(json.dumps(res)); return
    sizes = [] if a.sizes == 'none' else [parse_n(s) for s in (a.sizes or ('1M' if a.quick else '100M,1B')).split(',')]
    sh = parse_n(a.shard_tokens or ('1M' if a.quick else '20M'))
    root = Path(a.dir); root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if 2.2*max(sizes, default=0) > free: sys.exit(f"{root} has {free/2**30:.1f} GiB free; the largest store needs about {2.2*max(sizes, default=0)/2**30:.1f} GiB: pass --dir")
    print(f"# {machine()}; store folder {root} ({free/2**30:.0f} GiB free)", flush=True)
    rows = []
    for n in sizes:
        path = root/f'scale-{n}'
        la = os.getloadavg()[0]
        r = run_fresh(__file__, '--phase', 'build', path, n)
        print(json.dumps(r), flush=True)
        r.update(run_fresh(__file__, '--phase', 'epoch', path)); r['load'] = (la + os.getloadavg()[0])/2
        print(json.dumps(r), flush=True)
        rows.append(r)
        if not a.keep: shutil.rmtree(path, ignore_errors=True); (root/f'.{path.name}.lock').unlink(missing_ok=True)
    if rows: print(table(rows, [('tokens', 'tokens', ','), ('n_docs', 'documents', ','), ('disk_mb', 'store MB', ',.0f'), ('build_s', 'build s', '.1f'),
                       ('peak_rss_mb', 'build peak RSS MB', ',.0f'), ('peak_anon_mb', 'build peak anon MB', ',.0f'),
                       ('open_s', 'open s (checksums)', '.2f'), ('batches', 'batches', ','), ('epoch_s', 'epoch s', '.1f'),
                       ('batches_s', 'batches/s', ',.0f'), ('anon_growth_mb', 'anon growth MB', '.1f'), ('file_rss_mb', 'file-backed MB', ',.0f'),
                       ('load', 'load avg', '.1f')]))
    if sh:
        pair = root/f'pair-{sh}'
        run_fresh(__file__, '--phase', 'pair', pair, sh)
        res = {'one': [], 'two': []}
        for _ in range(1 if a.quick else 3):
            for k in res: res[k].append(run_fresh(__file__, '--phase', 'epoch', pair/k, 3))
        best = {k: max(v, key=lambda r: r['batches_s']) for k,v in res.items()}
        rows2 = [dict(store=k, shards=best[k]['shards'], batches=best[k]['batches'], runs=', '.join(f"{r['batches_s']:,.0f}" for r in res[k]),
                      batches_s=best[k]['batches_s'], anon=best[k]['anon_growth_mb'], ratio=best[k]['batches_s']/best['one']['batches_s']) for k in res]
        print(f"\n# sharded vs one-file, {sh:,} tokens, load average {os.getloadavg()[0]:.1f}")
        print(table(rows2, [('store', 'store', ''), ('shards', 'shards', ''), ('batches', 'batches (3 epochs)', ','), ('runs', 'batches/s (runs)', ''),
                            ('batches_s', 'best batches/s', ',.0f'), ('ratio', 'vs one-file', '.3f'), ('anon', 'anon growth MB', '.1f')]))
        if not a.keep: shutil.rmtree(pair, ignore_errors=True); (root/f'.{pair.name}.lock').unlink(missing_ok=True)
        if a.json: Path(a.json).write_text(json.dumps(dict(scale=rows, shards=rows2)))

if __name__ == '__main__': main()

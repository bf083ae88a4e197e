"""Raw text to batches: build time and peak memory of `DiskLMDataLoaders.from_texts` against fastai's
`TextDataLoaders.from_df(is_lm=True)` on the same text (the shipped WikiText-2 sample, repeated 1x and 8x).

    python bench/bench_lm_build.py            # 1x and 8x
    python bench/bench_lm_build.py --quick    # 10 articles, 1x (smoke test)

Each side runs in a fresh process and is timed from raw text to its first training batch, with the same tokenizer (spaCy, fastai's
rules) and the same number of tokenizing processes. Peak RSS is sampled every 50 ms (the process alone, and with its tokenizing
worker processes added) and reported as growth over the process after its imports and with the text loaded (the `peak RSS`
column is the absolute figure, about 1 GB of it PyTorch, fastai and spaCy); anonymous memory is the heap (file-backed pages of
the token files are page cache). A fastai_memstream build
that finds its stores reuses them: the third row times that second call.
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import PeakSampler, proc_mem, run_fresh, table, machine

def texts(mult, n_articles):
    from fastai_memstream.store import wikitext_df
    df = wikitext_df(n_articles=n_articles)
    return [t for _ in range(mult) for t in df.text.tolist()]

def worker(side, mult, n_articles, cache, n_workers):
    import pandas as pd
    from fastai.text.all import TextDataLoaders
    from fastai_memstream.lm import DiskLMDataLoaders
    ts = texts(mult, n_articles)
    n_chars = sum(map(len, ts))
    m0 = proc_mem()              # after the imports and the text: what follows is the build's own memory
    with PeakSampler() as ps:
        t0 = time.time()
        if side == 'fastai':
            dls = TextDataLoaders.from_df(pd.DataFrame({'text': ts}), text_col='text', is_lm=True, valid_pct=0.1, seed=42,
                                          bs=64, seq_len=72, n_workers=n_workers)
            n_tok = None
        else:
            dls = DiskLMDataLoaders.from_texts(ts, cache, valid_pct=0.1, seed=42, bs=64, seq_len=72, n_workers=n_workers,
                                               progress=False, force_rebuild=(side == 'memstream'), device='cpu')
            n_tok = dls.train.dataset.total_tokens + dls.valid.dataset.total_tokens
        b = dls.train.one_batch()
        dt = time.time() - t0
    return dict(side=side, mult=mult, chars=n_chars, secs=dt, peak_rss_mb=ps.peak['rss_mb'], peak_total_rss_mb=ps.peak['total_rss_mb'],
                peak_anon_mb=ps.peak['anon_mb'], anon_growth_mb=ps.peak['anon_mb'] - m0['anon_mb'], rss0_mb=m0['rss_mb'],
                rss_growth_mb=ps.peak['rss_mb'] - m0['rss_mb'], total_growth_mb=ps.peak['total_rss_mb'] - m0['rss_mb'],
                vocab=len(dls.vocab), tokens=n_tok, train_batches=len(dls.train))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='10 articles, 1x (smoke test)')
    p.add_argument('--mults', type=int, nargs='*', default=None, help='how many times the sample is repeated (default 1 8)')
    p.add_argument('--n-workers', type=int, default=2, help='tokenizing processes for both sides')
    p.add_argument('--json', default=None)
    p.add_argument('--worker', nargs=5, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        side, mult, n_art, cache, nw = a.worker
        print(json.dumps(worker(side, int(mult), None if n_art == 'None' else int(n_art), cache, int(nw)))); return
    mults, n_art = a.mults or ([1] if a.quick else [1, 8]), (10 if a.quick else None)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix='bench_lm_build_'))
    try:
        for m in mults:
            res = {s: run_fresh(__file__, '--worker', s, m, n_art, tmp/f'x{m}', a.n_workers) for s in ('fastai', 'memstream', 'memstream-reuse')}
            f = res['fastai']
            for s,name in (('fastai', 'TextDataLoaders.from_df(is_lm=True)'), ('memstream', 'DiskLMDataLoaders.from_texts'),
                           ('memstream-reuse', 'DiskLMDataLoaders.from_texts, stores reused')):
                r = res[s]
                rows.append(dict(size=f"{m}x ({r['chars']/1e6:.1f} MB)", side=name, secs=r['secs'], speed=f['secs']/r['secs'],
                                 rss=r['peak_rss_mb'], grow=r['rss_growth_mb'], grow_ratio=r['rss_growth_mb']/max(f['rss_growth_mb'], 1e-9),
                                 tot=r['total_growth_mb'], anon=r['anon_growth_mb']))
            print(f"done {m}x", file=sys.stderr)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    print(f"Raw text to the first batch, WikiText-2 sample repeated, {a.n_workers} tokenizing processes; {machine()}")
    print(table(rows, [('size','text',''), ('side','build',''), ('secs','seconds','.1f'), ('speed','× fastai speed','.2f'),
                       ('rss','peak RSS MB','.0f'), ('grow','RSS growth MB','.0f'), ('grow_ratio','÷ fastai','.2f'),
                       ('tot','growth with workers MB','.0f'), ('anon','anon. growth MB','.0f')]))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()

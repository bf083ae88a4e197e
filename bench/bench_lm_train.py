"""One epoch of a small AWD-LSTM through fastai's `Learner`: `DiskLMDataLoaders` against fastai's `TextDataLoaders(is_lm=True)`.

    python bench/bench_lm_train.py            # the shipped WikiText-2 sample
    python bench/bench_lm_train.py --quick    # 10 articles, a tiny model

Each side runs in a fresh process: data first (fastai tokenizes the DataFrame; fastai_memstream builds or reuses its stores), then
`learn.fit(1)` is timed and its memory sampled. Same split (`valid_pct=0.1, seed=42`), same vocabulary (fastai gets
`text_vocab=` the store's), same model configuration and initial weights, so the losses should be close (the shuffled order differs).
fastai numericalizes each document on the fly while it iterates; the stores hold ids already. Both loaders run without worker
processes (`LMDataLoader`'s default); PyTorch uses `--threads` threads in both runs.
"""
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from lm_bench_utils import PeakSampler, proc_mem, run_fresh, table, machine, DEFAULT_CACHE

def worker(side, n_articles, cache, quick, bs, seq_len, threads):
    import torch
    if threads > 0: torch.set_num_threads(threads)
    from fastai.text.all import TextDataLoaders, language_model_learner, AWD_LSTM, awd_lstm_lm_config
    from fastai_memstream.store import wikitext_df
    from fastai_memstream.lm import DiskLMDataLoaders
    df = wikitext_df(n_articles=n_articles)
    mine = DiskLMDataLoaders.from_df(df, cache, valid_pct=0.1, seed=42, text_col='text', bs=bs, seq_len=seq_len, progress=False, device='cpu')
    if side == 'fastai':
        dls = TextDataLoaders.from_df(df, valid_pct=0.1, seed=42, text_col='text', is_lm=True, bs=bs, seq_len=seq_len,
                                      text_vocab=mine.vocab, device='cpu')
        del mine
    else: dls = mine
    cfg = dict(awd_lstm_lm_config, emb_sz=32, n_hid=32, n_layers=1) if quick else dict(awd_lstm_lm_config, emb_sz=64, n_hid=128, n_layers=2)
    torch.manual_seed(0)
    learn = language_model_learner(dls, AWD_LSTM, config=cfg, pretrained=False)
    m0 = proc_mem()
    with PeakSampler(children=False) as ps, learn.no_bar(), learn.no_logging():
        t0 = time.time()
        learn.fit(1, 1e-2)
        dt = time.time() - t0
    tl, vl = learn.recorder.values[-1][:2]
    return dict(side=side, secs=dt, num_workers=dls.train.fake_l.num_workers, n_train=len(dls.train), n_valid=len(dls.valid), train_loss=float(tl), valid_loss=float(vl),
                anon_growth_mb=ps.peak['anon_mb'] - m0['anon_mb'], peak_rss_mb=ps.peak['rss_mb'], threads=torch.get_num_threads())

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true'); p.add_argument('--bs', type=int, default=64); p.add_argument('--seq-len', type=int, default=72)
    p.add_argument('--cache', default=str(DEFAULT_CACHE/'wikitext_lm')); p.add_argument('--json', default=None)
    p.add_argument('--threads', type=int, default=1, help='torch threads in both runs (0: torch default); 1 keeps a shared machine from thrashing')
    p.add_argument('--worker', nargs=7, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        side, n_art, cache, quick, bs, sl, th = a.worker
        print(json.dumps(worker(side, None if n_art == 'None' else int(n_art), cache, quick == 'True', int(bs), int(sl), int(th)))); return
    n_art = 10 if a.quick else None
    cache = Path(a.cache)/('quick' if a.quick else 'full')
    bs, sl = (16, 36) if a.quick else (a.bs, a.seq_len)
    res = {s: run_fresh(__file__, '--worker', s, n_art, cache, a.quick, bs, sl, a.threads) for s in ('fastai', 'memstream')}
    f = res['fastai']
    rows = [dict(side=n, nw=res[s]['num_workers'], secs=res[s]['secs'], speed=f['secs']/res[s]['secs'], bps=res[s]['n_train']/res[s]['secs'], nb=res[s]['n_train'],
                 anon=res[s]['anon_growth_mb'], rss=res[s]['peak_rss_mb'], tl=res[s]['train_loss'], vl=res[s]['valid_loss'])
            for s,n in (('fastai', 'TextDataLoaders(is_lm=True)'), ('memstream', 'DiskLMDataLoaders'))]
    model = 'emb 32, hidden 32, 1 layer' if a.quick else 'emb 64, hidden 128, 2 layers'
    print(f"One epoch of an AWD-LSTM ({model}) through Learner.fit, bs={bs}, seq_len={sl}, WikiText-2 sample"
          f"{' (10 articles)' if a.quick else ''}, {f['threads']} torch threads; {machine()}")
    print(table(rows, [('side','loaders',''), ('nw','workers',''), ('nb','train batches',''), ('secs','epoch s','.1f'), ('speed','× fastai speed','.2f'),
                       ('bps','train batches/s','.1f'), ('anon','anon. growth in fit MB','.1f'), ('rss','peak RSS MB','.0f'),
                       ('tl','train loss','.3f'), ('vl','valid loss','.3f')]))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows

if __name__ == '__main__': main()

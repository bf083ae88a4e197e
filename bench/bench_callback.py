"""Overhead of `RSSLogger` on a fastai training loop, against the same loop without it, measured in the same run.

    python bench/bench_callback.py               # about five minutes
    python bench/bench_callback.py --trim-only   # only the effect of `trim` (about three minutes)
    python bench/bench_callback.py --quick       # a few seconds (smoke test)

A synth_learner (fastai.test_utils) trains for `--epochs` epochs of `--batches` batches, with and without `RSSLogger`,
runs interleaved; the table gives the median fit time, its ratio to the baseline and the time added per epoch.
Then the cost of one reading of each helper.

Last, the memory tutorial's small AWD-LSTM on its WikiText sample, `RSSLogger(trim=False)` against the default
`trim=True`, each run in a fresh process: how much anonymous memory moves between epochs after the first (what the
leak warning's `leak_threshold_mb` must stay above), and how many leak warnings each setting raised."""
import argparse, time, statistics, os, warnings, collections, multiprocessing as mp
warnings.filterwarnings('ignore')
import numpy as np, torch
from fastai.test_utils import synth_learner
import fastai.callback.progress  # Learner.no_bar
from fastai_memstream.callback import RSSLogger, memory_info, get_memory_mb, MemorySampler

def fit_time(mk_cbs, batches, epochs):
    learn = synth_learner(n_trn=batches, n_val=2, cbs=mk_cbs())
    with learn.no_bar(), learn.no_logging():
        t = time.perf_counter(); learn.fit(epochs); return time.perf_counter() - t

def per_call(f, n):
    f(); t = time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter() - t)/n

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='tiny sizes, one repeat (smoke test)')
    p.add_argument('--batches', type=int, default=1000, help='training batches per epoch')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--trim-only', action='store_true', help='only compare trim=False and trim=True on the tutorial model')
    p.add_argument('--trim-articles', type=int, default=24, help='WikiText articles for --trim (the tutorial uses 24)')
    p.add_argument('--trim-epochs', type=int, default=5)
    p.add_argument('--trim-repeats', type=int, default=2)
    a = p.parse_args(argv)
    if a.quick: a.batches,a.epochs,a.repeats,a.trim_articles,a.trim_epochs,a.trim_repeats = 30,2,1,3,2,1
    torch.set_num_threads(1)
    if a.trim_only: return trim_effect(a.trim_articles, a.trim_epochs, a.trim_repeats)
    configs = {'baseline (no RSSLogger)': lambda: [],
               'RSSLogger() (interval=0.1)': lambda: [RSSLogger()],
               'RSSLogger(interval=0.01)': lambda: [RSSLogger(interval=0.01)],
               'RSSLogger(interval=None)': lambda: [RSSLogger(interval=None)]}
    fit_time(configs['baseline (no RSSLogger)'], min(a.batches, 50), 1)   # warm up
    times = {k:[] for k in configs}
    for _ in range(a.repeats):
        for k,mk in configs.items(): times[k].append(fit_time(mk, a.batches, a.epochs))
    base = statistics.median(times['baseline (no RSSLogger)'])
    print(f"synth_learner, {a.epochs} epochs x {a.batches} batches (bs=16), median of {a.repeats} interleaved runs")
    print(f"{'config':30} {'fit s':>8} {'ratio':>7} {'ms/epoch':>9}")
    for k,v in times.items():
        m = statistics.median(v)
        print(f"{k:30} {m:8.3f} {m/base:7.3f} {(m-base)/a.epochs*1e3:9.1f}")
    print(f"\ntime spent inside RSSLogger's events (the training loop's share; the sampling thread runs beside it)")
    for interval in (0.1, None):
        T = collections.defaultdict(float)
        class Timed(RSSLogger):
            def __call__(self, ev):
                t = time.perf_counter(); r = super().__call__(ev); T[ev] += time.perf_counter() - t; return r
        learn = synth_learner(n_trn=a.batches, n_val=2, cbs=Timed(interval=interval))
        with learn.no_bar(), learn.no_logging():
            t = time.perf_counter(); learn.fit(a.epochs); tot = time.perf_counter() - t
        n_b = (a.batches + 2)*a.epochs
        per_epoch = sum(v for k,v in T.items() if k in ('after_validate','after_epoch','before_epoch'))/a.epochs
        per_batch = sum(v for k,v in T.items() if k not in ('after_validate','after_epoch','before_epoch','before_train','before_fit','after_fit'))/n_b
        print(f"interval={interval}: {sum(T.values())*1e3:.1f} ms of a {tot:.2f} s fit ({sum(T.values())/tot*100:.2f}%): "
              f"{per_batch*1e6:.1f} us per batch (with the two worker snapshots per epoch), {per_epoch*1e3:.1f} ms per epoch end, {T['before_train']*1e3:.1f} ms in before_train (baseline)")
    n = 20 if a.quick else 300
    print(f"\ncost of one reading (mean of {n} calls)")
    ms = MemorySampler(children=True)
    for name,f in [('get_memory_mb()', get_memory_mb),
                   ('memory_info(uss=False)', lambda: memory_info(uss=False)),
                   ('memory_info()', memory_info),
                   ('memory_info(children=True)', lambda: memory_info(children=True)),
                   ('MemorySampler.sample() (no children)', MemorySampler().sample),
                   ('MemorySampler(children=True).sample()', ms.sample)]:
        print(f"{name:40} {per_call(f, n)*1e6:9.1f} us")
    trim_effect(a.trim_articles, a.trim_epochs, a.trim_repeats)

def _tutorial_run(n_articles, epochs, trim):
    "One training run of the memory tutorial's setup with `RSSLogger(trim=trim)`: (per-epoch anonymous MB, leak warnings)"
    import numpy as np
    from fastai.text.all import TextDataLoaders, language_model_learner, AWD_LSTM, awd_lstm_lm_config, set_seed
    from fastai_memstream.store import wikitext_df
    df = wikitext_df(n_articles=n_articles)
    df['is_valid'] = np.arange(len(df)) % 6 == 0
    dls = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=16, seq_len=32, num_workers=0, seed=42)
    set_seed(42)
    learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=64, n_hid=128, n_layers=2),
                                   pretrained=False, cbs=RSSLogger(trim=trim))
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        learn.fit_one_cycle(epochs, 1e-2)
    return learn.rss_logger.history.anon_mb.tolist(), sum('leak' in str(x.message) for x in w)

def _in_fresh_process(f, *args):
    "`f(*args)` in a child forked from this process (not a daemon: fastai's tokenizer starts processes of its own)"
    ctx = mp.get_context('fork')
    q = ctx.Queue()
    def target():
        try: q.put(('ok', f(*args)))
        except BaseException as e: q.put(('error', repr(e)))
    p = ctx.Process(target=target)
    p.start(); status,res = q.get(); p.join()
    if status == 'error': raise RuntimeError(f"the run failed in the child process: {res}")
    return res

def trim_effect(n_articles, epochs, repeats):
    print(f"\nanonymous memory between epochs, memory tutorial's AWD-LSTM, {n_articles} WikiText articles, {epochs} epochs, "
          f"{repeats} fresh-process runs per setting (runs interleaved)")
    res = {False: [], True: []}
    for _ in range(repeats):
        for trim in res: res[trim].append(_in_fresh_process(_tutorial_run, n_articles, epochs, trim))
    print(f"{'setting':14} {'change per epoch after the first, MB':>38} {'largest growth, 2 in a row':>27} {'leak warnings':>14}")
    for trim,runs in res.items():
        deltas = [d for anon,_ in runs for d in np.diff(anon)]   # epoch e minus epoch e-1, e >= 1
        pairs = [min(x, y) for anon,_ in runs for x,y in zip(np.diff(anon), np.diff(anon)[1:])]
        two = f"{max(pairs):+.1f}" if pairs else 'n/a'
        print(f"{'trim='+str(trim):14} {min(deltas):+18.1f} to {max(deltas):+.1f}{'':10} {two:>27} {sum(n for _,n in runs):>14}")

if __name__ == '__main__': main()

"""Overhead of `RSSLogger` on a fastai training loop, against the same loop without it, measured in the same run.

    python bench/bench_callback.py            # about two minutes
    python bench/bench_callback.py --quick    # a few seconds (smoke test)

A synth_learner (fastai.test_utils) trains for `--epochs` epochs of `--batches` batches, with and without `RSSLogger`,
runs interleaved; the table gives the median fit time, its ratio to the baseline and the time added per epoch.
Then the cost of one reading of each helper."""
import argparse, time, statistics, os, warnings, collections
warnings.filterwarnings('ignore')
import torch
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
    a = p.parse_args(argv)
    if a.quick: a.batches,a.epochs,a.repeats = 30,2,1
    torch.set_num_threads(1)
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

if __name__ == '__main__': main()

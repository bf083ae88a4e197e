"""Speed and memory of `StreamingSquadProcessor` against the transformers `run_qa.py` recipe through `datasets.map(batched=True)`.

    python bench/bench_squad.py            # ~2 minutes: 8,320 examples, BERT tokenizer, 384/128
    python bench/bench_squad.py --quick    # a few seconds (smoke test)

Input: the shipped SQuAD v2 dev sample (208 questions, 39 paragraphs) repeated; each copy gets unique ids and a context
prefixed with "Copy k." (answer starts shifted), so copies don't share contexts and the processor's per-chunk context
deduplication gains no more than on real SQuAD (a paragraph's questions share its context there too).
Both sides produce the same features (input ids, masks, token types, start/end positions, example ids, context offsets)
and write them to disk: run_qa to a `datasets` cache file, the processor to a `ChunkedCacheManager` from a JSONL file.
Ratio 1: features/s of the processor / features/s of run_qa, median of interleaved repeats in the same run.
Ratio 2: peak RSS of a fresh process streaming 8x the input / the same for 1x (memory bounded by the chunk, not the data)."""
import argparse, json, os, statistics, subprocess, sys, tempfile, time, shutil
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import datasets
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tests'))
from run_qa_recipe import squad_rows, repeated_rows, run_qa_features  # the recipe, shared with the oracle test
datasets.disable_progress_bars()

def base_rows(): return squad_rows(sample_data('squad-v2/dev-v2.0-subset.json'))

def write_jsonl(fn, n_copies):
    with open(fn, 'w', encoding='utf-8') as f:
        for r in repeated_rows(base_rows(), n_copies): f.write(json.dumps(r) + '\n')

def time_run_qa(tok, ds, msl, stride, tmp):
    fn = Path(tmp)/f'runqa-{time.time_ns()}.arrow'
    t = time.perf_counter()
    out = run_qa_features(tok, ds, msl, stride, cache_file_name=str(fn), load_from_cache_file=False)
    dt = time.perf_counter() - t
    n = len(out); del out; fn.unlink(missing_ok=True)
    return n, dt

def time_processor(tok, jsonl, msl, stride, tmp, n_workers=1, chunk=1000):
    cm = ChunkedCacheManager(Path(tmp)/f'cache-{time.time_ns()}')
    proc = StreamingSquadProcessor(tok, msl, stride, streaming_chunk_size=chunk, n_workers=n_workers, progress=False, verbose=False)
    t = time.perf_counter()
    n = proc.process_dataset_streaming(jsonl, 'train', cache_manager=cm, name='bench')
    dt = time.perf_counter() - t
    shutil.rmtree(cm.cache_dir)
    return n, dt

def peak_rss_mb():
    "Peak RSS of this process (VmHWM: the high-water mark of this process's own memory; `ru_maxrss` would include the parent's before exec)"
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM:'): return int(l.split()[1])/1024

def rss_child(n_copies, msl, stride, chunk):
    "In a fresh process: stream `n_copies` of the sample from JSONL into a cache; print peak RSS before/after, in MB"
    tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    with tempfile.TemporaryDirectory() as tmp:
        fn = Path(tmp)/'in.jsonl'; write_jsonl(fn, n_copies)
        proc = StreamingSquadProcessor(tok, msl, stride, streaming_chunk_size=chunk, progress=False, verbose=False)
        before = peak_rss_mb()
        n = proc.process_dataset_streaming(fn, 'train', cache_manager=ChunkedCacheManager(Path(tmp)/'c'), name='rss')
        peak = peak_rss_mb()
    print(json.dumps(dict(features=n, examples=proc.stats['examples'], before_mb=before, peak_mb=peak)))

def _reset_peak():
    "Reset this process's VmHWM to its current RSS (Linux >= 4.0), so a forked child measures its own peak"
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')

def _fork_child(n_copies, msl, stride, chunk, q):
    import contextlib, io
    _reset_peak()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rss_child(n_copies, msl, stride, chunk)
    q.put(buf.getvalue())

def measure_rss(n_copies, msl, stride, chunk, fresh=True):
    "Peak RSS of streaming `n_copies` into a cache: in a fresh interpreter, or (quick) in a forked child with its peak reset"
    if fresh:
        out = subprocess.run([sys.executable, __file__, '--rss-child', str(n_copies), '--seq', str(msl), '--stride', str(stride),
                              '--chunk', str(chunk)], capture_output=True, text=True, check=True).stdout
    else:
        import multiprocessing as mp
        ctx = mp.get_context('fork'); q = ctx.Queue()
        pr = ctx.Process(target=_fork_child, args=(n_copies, msl, stride, chunk, q)); pr.start()
        out = q.get(timeout=600); pr.join()
    return json.loads(out.strip().splitlines()[-1])

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='tiny sizes, one repeat (smoke test)')
    p.add_argument('--copies', type=int, default=40, help='copies of the 208-question sample for the speed runs')
    p.add_argument('--rss-copies', type=int, default=10, help='copies for the 1x memory run (the 8x run uses 8 times more)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--seq', type=int, default=384); p.add_argument('--stride', type=int, default=128)
    p.add_argument('--chunk', type=int, default=1000, help='streaming_chunk_size')
    p.add_argument('--workers', type=int, default=2, help='also time n_workers=this (0 to skip)')
    p.add_argument('--rss-child', type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child is not None: return rss_child(a.rss_child, a.seq, a.stride, a.chunk)
    if a.quick: a.copies,a.rss_copies,a.repeats,a.chunk = 2,1,1,100
    tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp)/'in.jsonl'; write_jsonl(jsonl, a.copies)
        ds = datasets.Dataset.from_json(str(jsonl), cache_dir=str(Path(tmp)/'hf'))
        configs = {'run_qa recipe, datasets.map(batched=True)': lambda: time_run_qa(tok, ds, a.seq, a.stride, tmp),
                   'StreamingSquadProcessor (1 process)': lambda: time_processor(tok, jsonl, a.seq, a.stride, tmp, 1, a.chunk)}
        if a.workers > 1: configs[f'StreamingSquadProcessor (n_workers={a.workers})'] = lambda: time_processor(tok, jsonl, a.seq, a.stride, tmp, a.workers, a.chunk)
        for f in configs.values(): f()  # warm up (imports, page cache)
        res = {k: [] for k in configs}
        for _ in range(a.repeats):
            for k,f in configs.items(): res[k].append(f())
    base_k = next(iter(configs))
    fps = {k: statistics.median(n/dt for n,dt in v) for k,v in res.items()}
    n_feat = res[base_k][0][0]
    print(f"BERT uncased tokenizer, max_seq_length={a.seq}, doc_stride={a.stride}, {a.copies} copies of the SQuAD v2 sample "
          f"= {208*a.copies:,} examples -> {n_feat:,} features; median of {a.repeats} interleaved runs; {os.cpu_count()} CPUs")
    print(f"| {'method':48} | {'features':>8} | {'seconds':>7} | {'features/s':>10} | {'ratio':>6} |")
    print(f"|{'-'*50}|{'-'*10}|{'-'*9}|{'-'*12}|{'-'*8}|")
    for k,v in res.items():
        assert all(n == n_feat for n,_ in v), (k, v)
        print(f"| {k:48} | {n_feat:8,} | {statistics.median(dt for _,dt in v):7.2f} | {fps[k]:10,.0f} | {fps[k]/fps[base_k]:6.2f} |")
    r1,r8 = (measure_rss(c, a.seq, a.stride, a.chunk, fresh=not a.quick) for c in (a.rss_copies, 8*a.rss_copies))
    print(f"\npeak RSS of {'a forked child (--quick)' if a.quick else 'a fresh process'} streaming JSONL into a cache (streaming_chunk_size={a.chunk}):")
    print(f"| {'input':24} | {'examples':>8} | {'features':>8} | {'peak RSS before run MB':>22} | {'peak RSS MB':>11} | {'growth MB':>9} | {'ratio':>6} |")
    print(f"|{'-'*26}|{'-'*10}|{'-'*10}|{'-'*24}|{'-'*13}|{'-'*11}|{'-'*8}|")
    for name,r in ((f'1x ({a.rss_copies} copies)', r1), (f'8x ({8*a.rss_copies} copies)', r8)):
        print(f"| {name:24} | {r['examples']:8,} | {r['features']:8,} | {r['before_mb']:22.0f} | {r['peak_mb']:11.0f} | "
              f"{r['peak_mb']-r['before_mb']:9.0f} | {r['peak_mb']/r1['peak_mb']:6.2f} |")
    print(f"\nspeed ratio (processor 1 process / run_qa): {fps['StreamingSquadProcessor (1 process)']/fps[base_k]:.2f}; "
          f"peak RSS ratio (8x / 1x input): {r8['peak_mb']/r1['peak_mb']:.2f}")

if __name__ == '__main__': main()

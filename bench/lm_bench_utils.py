"Helpers shared by the LM benchmarks (bench_lm_*.py): synthetic corpora, memory readings, fresh-process runs, tables"
import json, os, subprocess, sys, threading, time
from pathlib import Path
import numpy as np

DEFAULT_CACHE = Path(os.environ.get('FASTAI_MEMSTREAM_BENCH', '/tmp/fastai_memstream_bench'))

def synth_docs(n_tokens:int, seed:int=0):
    "About `n_tokens` Zipf-distributed ids (vocab 60,000) in documents of log-normal length (median ~245 tokens), a document at a time"
    rng = np.random.default_rng(seed)
    lens = rng.lognormal(5.5, 1.0, size=n_tokens//100 + 10).astype(np.int64) + 1
    lens = lens[np.cumsum(lens) <= n_tokens]
    r = np.random.default_rng(seed + 1)
    for n in lens: yield (r.zipf(1.3, size=int(n)) % 60000).astype(np.uint16)

def synth_store(n_tokens:int, cache=DEFAULT_CACHE, seed:int=0):
    "A store of `synth_docs(n_tokens, seed)`, built once"
    from fastai_memstream.store import DiskLMDataset
    return DiskLMDataset.from_token_docs(synth_docs(n_tokens, seed), Path(cache)/f'synth-{n_tokens}-{seed}', vocab_size=60000, progress=False,
                                         source_id=f'synth-{n_tokens}-{seed}-v1')

def synth_sharded(n_tokens:int, n_shards:int=2, cache=DEFAULT_CACHE, seed:int=0):
    "The documents of `synth_store(n_tokens, seed)` as the `n_shards` shards that as many torch.distributed ranks write (built in this process), built once"
    from fastai_memstream.store import DiskLMDataset
    from fastai_memstream.distrib import _sharded_here
    path = Path(cache)/f'synth-{n_tokens}-{seed}-{n_shards}shards'
    if (path/'manifest.json').exists():
        ds = DiskLMDataset(path)
        if ds.n_shards == n_shards and ds.meta['fingerprint'] == synth_store(n_tokens, cache, seed).meta['fingerprint']: return ds   # same documents
    return _sharded_here(list(synth_docs(n_tokens, seed)), path, n_shards, vocab_size=60000, source_id=f'synth-{n_tokens}-{seed}-v1')

def proc_mem(pid='self', smaps:bool=True)->dict:
    "RSS, anonymous, file-backed and shared-memory resident memory (MB) from /proc/<pid>/status, private dirty pages from smaps_rollup"
    st = {}
    for l in open(f'/proc/{pid}/status'):
        k = l.split(':')[0]
        if k in ('VmRSS', 'RssAnon', 'RssFile', 'RssShmem', 'VmHWM'): st[k] = int(l.split()[1])/1024
    pd_ = 0
    try:
        for l in (open(f'/proc/{pid}/smaps_rollup') if smaps else ()):   # smaps_rollup takes 10-20 ms with PyTorch loaded
            if l.startswith('Private_Dirty'): pd_ = int(l.split()[1])/1024
    except OSError: pass
    return dict(rss_mb=st['VmRSS'], anon_mb=st['RssAnon'], file_mb=st['RssFile'], shmem_mb=st.get('RssShmem', 0.), hwm_mb=st.get('VmHWM'),
                private_dirty_mb=pd_)

class PeakSampler:
    "Background thread sampling this process's (and its children's) RSS and anonymous memory every `interval` seconds"
    def __init__(self, interval=0.05, children=True):
        self.interval,self.children = interval,children
        self.peak = dict(rss_mb=0., anon_mb=0., total_rss_mb=0.)
        self._stop = threading.Event()
    def sample(self):
        m = proc_mem(smaps=False)
        tot = m['rss_mb']
        if self.children:
            try:
                import psutil
                for k in psutil.Process().children(recursive=True):
                    try: tot += k.memory_info().rss/2**20
                    except psutil.Error: pass
            except ImportError: pass
        for k,v in (('rss_mb', m['rss_mb']), ('anon_mb', m['anon_mb']), ('total_rss_mb', tot)): self.peak[k] = max(self.peak[k], v)
    def _run(self):
        while not self._stop.is_set(): self.sample(); self._stop.wait(self.interval)
    def __enter__(self):
        self.sample(); self._t = threading.Thread(target=self._run, daemon=True); self._t.start(); return self
    def __exit__(self, *a):
        self._stop.set(); self._t.join(); self.sample()

def run_fresh(script, *args, timeout=3600)->dict:
    "Run `script` with `args` in a fresh Python process; it prints one JSON line last"
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore'}
    out = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0: raise RuntimeError(f"{script} {args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

def table(rows, cols)->str:
    "Markdown table of `rows` (dicts) with `cols` [(key, header, format)]"
    head = '| ' + ' | '.join(h for _,h,_ in cols) + ' |'
    sep = '|' + '|'.join('---' for _ in cols) + '|'
    def fmt(v, f):
        if v is None: return '-'
        return format(v, f) if f else str(v)
    return '\n'.join([head, sep] + ['| ' + ' | '.join(fmt(r.get(k), f) for k,_,f in cols) + ' |' for r in rows])

def machine()->str:
    import platform, torch, fastai
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}")

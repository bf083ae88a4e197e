"Memory helpers without psutil (and without /proc), simulated in fresh processes"
import subprocess, sys, json, textwrap

def _run(code):
    out = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])

_PRE = """
import sys, json, warnings, subprocess, time
sys.modules['psutil'] = None          # `import psutil` now raises ImportError
warnings.simplefilter('always')
import fastai_memstream.memory as cb
assert cb._psutil is None
"""

def test_without_psutil_reads_proc_and_warns_once():
    res = _run(_PRE + """
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    ms = [cb.memory_info() for _ in range(3)]
    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    time.sleep(0.2)
    mc = cb.memory_info(children=True)
    p.kill(); p.wait()
    rss = cb.get_memory_mb()
    with cb.MemorySampler(interval=0.01, children=True) as s: time.sleep(0.1)
msgs = [str(x.message) for x in w if 'psutil' in str(x.message)]
print(json.dumps(dict(msgs=msgs, m=ms[-1], mc=mc, rss=rss, peak=s.peak_mb, n=len(s.samples))))
""")
    assert len(res['msgs']) == 1 and 'psutil is not installed' in res['msgs'][0]
    m = res['m']
    for k in ('rss_mb', 'anon_mb', 'file_mb', 'uss_mb'): assert m[k] > 0, k   # Linux: all from /proc (USS from smaps_rollup)
    assert abs(m['anon_mb'] + m['file_mb'] - m['rss_mb']) < 2
    assert res['mc']['child_n'] >= 1 and res['mc']['child_rss_mb'] > 0   # children found by scanning /proc
    assert res['rss'] > 0 and res['peak'] > 0 and res['n'] >= 3

def test_without_psutil_or_proc_gives_fewer_fields():
    res = _run(_PRE + """
from pathlib import Path
cb._PROC = Path('/nonexistent-proc')  # a platform without /proc
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    ms = [cb.memory_info(children=True) for _ in range(3)]
    with cb.MemorySampler(interval=0.01, children=True) as s: time.sleep(0.05)
msgs = [str(x.message) for x in w if 'psutil' in str(x.message)]
print(json.dumps(dict(msgs=msgs, m=ms[-1], rss=cb.get_memory_mb(), peak=s.peak_mb, child=s.peak_children_mb)))
""")
    assert len(res['msgs']) == 1 and 'no /proc' in res['msgs'][0]
    m = res['m']
    assert m['rss_mb'] > 0 and res['rss'] > 0 and res['peak'] > 0   # peak RSS from `resource`
    for k in ('uss_mb', 'anon_mb', 'file_mb', 'child_n', 'child_rss_mb'): assert m[k] is None, k
    assert res['child'] is None

_ZOMBIE = """
import os, sys, json, time, subprocess
{pre}
from fastai_memstream.memory import memory_info, MemorySampler, get_memory_mb
p = subprocess.Popen([sys.executable, '-c', 'pass'])
for _ in range(500):   # wait until it is a zombie, without reaping it
    if 'Z (zombie)' in open(f'/proc/{{p.pid}}/status').read(): break
    time.sleep(0.01)
else: raise SystemExit("the child did not exit")
mc = memory_info(children=True)
s = MemorySampler(children=True).sample()
try: get_memory_mb(p.pid); err = None
except ProcessLookupError as e: err = str(e)
p.wait()
print(json.dumps(dict(n=mc['child_n'], rss=mc['child_rss_mb'], anon=mc['child_anon_mb'],
                      srss=s.children_rss_mb, sanon=s.children_anon_mb, err=err)))
"""

def test_zombie_children_are_skipped():
    "A child that has exited but is not yet reaped (a DataLoader worker done with its batches) holds no memory: not counted"
    # in a fresh process, whose only child is the zombie (pytest's own process may have helpers left by other tests)
    for pre in ('', "sys.modules['psutil'] = None"):
        r = _run(_ZOMBIE.format(pre=pre))
        assert r['n'] == 0 and r['rss'] == 0 and r['anon'] == 0, (pre, r)
        assert r['srss'] == 0 and r['sanon'] == 0, (pre, r)
        assert r['err'] and 'exited' in r['err'], (pre, r)

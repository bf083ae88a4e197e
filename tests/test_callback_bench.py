"Smoke run of bench/bench_callback.py --quick"
import subprocess, sys, re
from pathlib import Path

def test_bench_callback_quick():
    fn = Path(__file__).parent.parent/'bench'/'bench_callback.py'
    out = subprocess.run([sys.executable, str(fn), '--quick'], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {l[:30].strip(): l[30:].split() for l in out.stdout.splitlines() if l.startswith(('baseline', 'RSSLogger'))}
    assert set(rows) == {'baseline (no RSSLogger)', 'RSSLogger() (interval=0.1)', 'RSSLogger(interval=0.01)', 'RSSLogger(interval=None)'}
    assert float(rows['baseline (no RSSLogger)'][1]) == 1.0
    for v in rows.values(): assert float(v[0]) > 0 and float(v[1]) > 0
    assert re.search(r'memory_info\(\)\s+[\d.]+ us', out.stdout)
    assert re.search(r'interval=0.1: [\d.]+ ms of a [\d.]+ s fit', out.stdout)
    trim = {l.split()[0]: l.split()[1:] for l in out.stdout.splitlines() if l.startswith('trim=')}
    assert set(trim) == {'trim=False', 'trim=True'}, out.stdout
    for v in trim.values(): assert float(v[0]) <= float(v[2]) and int(v[-1]) >= 0   # a range of MB, a count of warnings

"Smoke test of bench/bench_lm_scale.py --quick: it runs, the stores read back, the sharded loaders see every batch, and nothing is left behind"
import json, os, subprocess, sys
from pathlib import Path

def test_scale_bench_quick(tmp_path):
    bench = Path(__file__).parent.parent/'bench'/'bench_lm_scale.py'
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
    p = subprocess.run([sys.executable, str(bench), '--quick', '--dir', str(tmp_path/'s'), '--json', str(tmp_path/'r.json')],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    r = json.loads((tmp_path/'r.json').read_text())
    (row,) = r['scale']
    assert row['tokens'] == 1_000_000 and row['dtype'] == 'uint16' and row['batches'] == (1_000_000 - 1)//64//72 and row['batches_s'] > 0
    assert [s['store'] for s in r['shards']] == ['one', 'two']
    assert len({s['batches'] for s in r['shards']}) == 1 and [s['shards'] for s in r['shards']] == [1, 2]
    assert sorted(os.listdir(tmp_path/'s')) == []   # stores (and their lock files) deleted

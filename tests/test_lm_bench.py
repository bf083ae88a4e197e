"Smoke runs of the LM benchmarks (`--quick`): they run end to end and print their table with the fastai baseline"
import json, os, subprocess, sys
from pathlib import Path
import pytest

BENCH = Path(__file__).parent.parent/'bench'

@pytest.mark.parametrize('script, rows', [('bench_lm_loader.py', 5), ('bench_lm_build.py', 3), ('bench_lm_workers.py', 2), ('bench_lm_train.py', 2)])
def test_bench_quick(script, rows, tmp_path):
    env = {**os.environ, 'FASTAI_MEMSTREAM_BENCH': str(tmp_path/'cache'), 'HF_HUB_OFFLINE': '1'}
    out = subprocess.run([sys.executable, str(BENCH/script), '--quick', '--json', str(tmp_path/'res.json')],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert '| ' in out.stdout and 'fastai' in out.stdout
    res = json.loads((tmp_path/'res.json').read_text())
    assert len(res) == rows
    if script == 'bench_lm_loader.py':
        f, m = res[0], res[1]
        assert m['speed'] > 2 and m['anon'] < f['anon']      # loose: a smoke test on a busy machine, not the benchmark
        sh = res[2]   # the same documents in 2 shards, read in the same run
        assert sh['loader'] == 'DiskLMDataLoader, 2 shards' and sh['batches'] == m['batches'] and m['vs_one'] == 1
        assert sh['vs_one'] == pytest.approx(sh['bps']/m['bps']) and sh['vs_one'] > 0.5

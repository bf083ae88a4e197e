"Smoke run of bench/bench_hf_build.py --quick: end to end, the same token ids as the run_clm recipe, the baselines in the table"
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

BENCH = Path(__file__).parent.parent/'bench'

def test_bench_hf_build_quick(tmp_path):
    pytest.importorskip('transformers'); pytest.importorskip('datasets')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    t0 = time.time()
    out = subprocess.run([sys.executable, str(BENCH/'bench_hf_build.py'), '--quick', '--json', str(tmp_path/'res.json')],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert 'run_clm recipe' in out.stdout and 'spaCy' in out.stdout
    rows = json.loads((tmp_path/'res.json').read_text())
    assert len(rows) == 8
    recipe,ours = rows[0],rows[1]
    assert ours['same'] == 'yes' and ours['tokens'] == recipe['tokens'] > 0   # the benchmark asserts the digests are equal too
    assert ours['speed'] > 1          # loose: a smoke test on a busy machine, not the benchmark
    print(f"bench --quick took {time.time()-t0:.0f}s")

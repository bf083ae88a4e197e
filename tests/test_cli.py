"""The command-line entry points: `python -m fastai_memstream` and the `fastai_memstream` console script."""
import subprocess, sys, shutil
from pathlib import Path

def _run(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'fastai_memstream', *args], capture_output=True, text=True, **kw)

def test_demo_quick(tmp_path):
    r = _run('demo', '--quick', '--out', str(tmp_path/'demo'), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/'demo'
    assert f"writing to {out}" in r.stdout
    assert (out/'lm'/'lm_cache'/'train'/'manifest.json').exists() and (out/'lm'/'lm_cache'/'valid'/'manifest.json').exists()
    assert 'trained a small AWD-LSTM for 1 epoch' in r.stdout and 'memory per epoch' in r.stdout and 'generated: the storm' in r.stdout
    assert 'SQuAD: streamed 208 questions' in r.stdout
    assert list((out/'squad').rglob('manifest.json')), "the SQuAD cache was not committed"
    r2 = _run('verify', str(out/'lm'/'lm_cache'/'train'))
    assert r2.returncode == 0 and 'every file matches' in r2.stdout

def test_console_script_installed():
    exe = Path(sys.executable).parent/'fastai_memstream'
    assert exe.exists(), "pip install -e . should install the fastai_memstream console script"
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout

def test_bad_folder_is_a_clear_error(tmp_path):
    r = _run('verify', str(tmp_path))
    assert r.returncode == 1
    assert 'no committed manifest.json' in r.stderr

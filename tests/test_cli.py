"""The command-line entry points: `python -m fastai_memstream` and the `fastai_memstream` console script."""
import subprocess, sys, shutil
from pathlib import Path

def _run(*args, **kw):
    return subprocess.run([sys.executable, '-m', 'fastai_memstream', *args], capture_output=True, text=True, **kw)

def test_demo_quick(tmp_path):
    r = _run('demo', '--quick', '--out', str(tmp_path/'demo'), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"writing to {tmp_path/'demo'}" in r.stdout
    assert (tmp_path/'demo').is_dir()

def test_console_script_installed():
    exe = Path(sys.executable).parent/'fastai_memstream'
    assert exe.exists(), "pip install -e . should install the fastai_memstream console script"
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout

def test_bad_folder_is_a_clear_error(tmp_path):
    r = _run('verify', str(tmp_path))
    assert r.returncode == 1
    assert 'no committed manifest.json' in r.stderr

"RSSLogger in a real training loop: the printed results table, DataLoader workers, no false leak with workers"
import warnings, re
import numpy as np, torch, pytest
from torch.utils.data import TensorDataset
from fastai.data.core import TfmdDL, DataLoaders
from fastai.callback.progress import ProgressCallback
from fastai.test_utils import synth_learner
from fastai_memstream.callback import RSSLogger

def _worker_dls(num_workers, n=64, bs=16):
    x = torch.randn(bs*n, 1)
    ds = TensorDataset(x, 2*x + 3)
    return DataLoaders(TfmdDL(ds, bs=bs, shuffle=True, num_workers=num_workers),
                       TfmdDL(TensorDataset(x[:64], 2*x[:64]+3), bs=bs, num_workers=num_workers))

_FMT_MSG = ("fastai's printed results table no longer formats floats with '.6f' ({what}). fastai_memstream.core.TableFloat "
            "relies on that private detail of fastai (ProgressCallback._write_stats formats each float with f'{{l:.6f}}') to print "
            "RSSLogger's memory columns and the SQuAD scores with fewer decimals: update TableFloat.__format__ for the new format.")

def _check_table_format(out, n_mem):
    "Rows of the printed results table: fastai's losses with '.6f', the next `n_mem` columns (RSSLogger's `TableFloat`s) with 1 decimal"
    rows = [l.split() for l in (l.strip() for l in out.splitlines()) if re.match(r'^\d+\s', l)]
    assert rows, f"no results table in the output:\n{out}"
    for r in rows:
        losses,mem = r[1:3],r[3:3+n_mem]
        assert all(re.fullmatch(r'-?\d+\.\d{6}', v) for v in losses), _FMT_MSG.format(what=f"the losses were printed as {losses}")
        assert all(re.fullmatch(r'\d+\.\d', v) for v in mem), _FMT_MSG.format(what=f"RSSLogger's columns were printed as {mem}, not with one decimal")
    return rows

def test_results_table_float_format(capsys):
    "fastai prints the results table's floats with '.6f', which `TableFloat` turns into one decimal for the memory columns"
    learn = synth_learner(n_trn=20, cbs=RSSLogger())
    learn.fit(2)
    assert len(_check_table_format(capsys.readouterr().out, 2)) == 2

def test_results_table_format_check_catches_a_change(capsys, monkeypatch):
    "If fastai formatted its results table another way, the check above fails and says what to update"
    def write_4f(self, log):   # what a fastai release printing 4 decimals would do
        if getattr(self, 'mbar', False): self.mbar.write([f'{l:.4f}' if isinstance(l, float) else str(l) for l in log], table=True)
    monkeypatch.setattr(ProgressCallback, '_write_stats', write_4f)
    learn = synth_learner(n_trn=20, cbs=RSSLogger())
    learn.fit(1)
    with pytest.raises(AssertionError, match=r"no longer formats floats with '\.6f'.*TableFloat\.__format__"):
        _check_table_format(capsys.readouterr().out, 2)

def test_column_in_printed_table(capsys):
    learn = synth_learner(n_trn=20, cbs=RSSLogger(cols=('rss_mb', 'anon_mb', 'peak_rss_mb')))
    assert any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
    learn.fit(3)
    out = capsys.readouterr().out
    _check_table_format(out, 3)
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    hdr = next(l for l in lines if l.startswith('epoch'))
    assert hdr.split() == ['epoch', 'train_loss', 'valid_loss', 'rss_mb', 'anon_mb', 'peak_rss_mb', 'time'], hdr
    rows = [l.split() for l in lines if re.match(r'^\d+\s', l)]
    h = learn.rss_logger.history
    assert len(rows) == 3
    for r, (_, e) in zip(rows, h.iterrows()):
        assert float(r[3]) == pytest.approx(round(e.rss_mb, 1)) and float(r[4]) == pytest.approx(round(e.anon_mb, 1))
        assert float(r[5]) == pytest.approx(round(e.peak_rss_mb, 1))

def test_workers_appear_with_num_workers_2():
    learn = synth_learner(data=_worker_dls(2), cbs=RSSLogger(interval=0.02))
    with warnings.catch_warnings(record=True) as w, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        learn.fit(3)
    assert [str(x.message) for x in w if 'leak' in str(x.message)] == []
    h = learn.rss_logger.history
    assert len(h) == 3
    assert (h.workers_n == 2).all(), h.workers_n
    assert (h.workers_rss_mb > 50).all()                       # two forked copies of a torch process
    assert (h.workers_uss_mb > 0).all() and (h.workers_uss_mb < h.workers_rss_mb).all()   # workers share pages with the parent
    assert (h.workers_uss_mb < h.workers_anon_mb/4).all()     # most of their anonymous memory is still shared copy-on-write
    assert ((h.workers_anon_mb + h.workers_file_mb) <= h.workers_rss_mb + 4).all()
    assert (h.workers_peak_rss_mb >= h.workers_rss_mb).all()
    assert (h.rss_mb > 0).all()
    ax = learn.rss_logger.plot()
    assert 'workers RSS (sum of 2)' in [l.get_label() for l in ax.get_lines()]

def test_no_workers_means_zero_workers():
    learn = synth_learner(data=_worker_dls(0, n=8), cbs=RSSLogger())
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    h = learn.rss_logger.history
    assert (h.workers_n == 0).all() and (h.workers_rss_mb == 0).all()

def test_bad_arguments():
    with pytest.raises(ValueError, match='choose from'): RSSLogger(cols=('rss',))
    with pytest.raises(ValueError, match='interval'): RSSLogger(interval=0)
    with pytest.raises(ValueError, match='leak_epochs'): RSSLogger(leak_epochs=0)
    with pytest.raises(ValueError, match='empty'): RSSLogger().plot()

def test_predictions_inside_and_after_fit_are_not_epochs():
    "`get_preds(inner=True)` from a callback during training, or after it, neither crashes nor adds to the results"
    from fastai.callback.core import Callback
    class PredEachEpoch(Callback):
        order = 70
        def after_epoch(self): self.n = len(self.learn.get_preds(inner=True)[0])
    learn = synth_learner(cbs=[RSSLogger(), PredEachEpoch()])
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert [len(v) for v in learn.recorder.values] == [4, 4]          # train_loss, valid_loss, rss_mb, anon_mb
    assert len(learn.rss_logger.history) == 2
    assert len(learn.get_preds(inner=True)[0]) == 32                  # after fit: the sampler is gone, nothing to measure
    assert len(learn.rss_logger.history) == 2

_NO_PSUTIL = """
import sys, json, warnings
sys.modules['psutil'] = None          # `import psutil` now raises ImportError
from pathlib import Path
import fastai_memstream.memory as mem
if {no_proc}: mem._PROC = Path('/nonexistent-proc')   # a platform without /proc either
from fastai.test_utils import synth_learner
import fastai.callback.progress
from fastai_memstream.callback import RSSLogger
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    learn = synth_learner(cbs=RSSLogger())
    with learn.no_bar(), learn.no_logging(): learn.fit(3)
    labels = [l.get_label() for l in learn.rss_logger.plot().get_lines()]
h = learn.rss_logger.history
print(json.dumps(dict(msgs=[str(x.message) for x in w if 'psutil' in str(x.message)], labels=labels,
                      table=[list(map(float, v[2:4])) for v in learn.recorder.values],
                      h={{k: [None if v != v else v for v in h[k]] for k in h.columns}})))
"""

def _fit_without_psutil(no_proc):
    import subprocess, sys, json
    r = subprocess.run([sys.executable, '-c', _NO_PSUTIL.format(no_proc=no_proc)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

def test_rsslogger_without_psutil():
    "Linux without psutil: every figure from /proc, one warning for the whole fit"
    res = _fit_without_psutil(False)
    assert len(res['msgs']) == 1 and 'psutil is not installed' in res['msgs'][0]
    h = res['h']
    assert h['epoch'] == [0, 1, 2]
    for k in ('rss_mb', 'uss_mb', 'anon_mb', 'file_mb', 'peak_rss_mb'): assert all(v > 0 for v in h[k]), k
    assert h['workers_n'] == [0, 0, 0]                                # children found by scanning /proc
    assert res['labels'] == ['RSS', 'anonymous', 'file-backed', 'peak RSS in epoch']
    assert res['table'] == [[round(r, 1), round(a, 1)] for r, a in zip(h['rss_mb'], h['anon_mb'])]

def test_rsslogger_without_psutil_or_proc():
    "No psutil and no /proc: RSS only (the peak, from `resource`), other figures unknown (NaN, not 0), one warning"
    res = _fit_without_psutil(True)
    assert len(res['msgs']) == 1 and 'no /proc' in res['msgs'][0]
    h = res['h']
    assert len(h['epoch']) == 3 and all(v > 0 for v in h['rss_mb'])
    for k in ('uss_mb', 'anon_mb', 'file_mb', 'workers_n', 'workers_rss_mb', 'workers_anon_mb', 'delta_anon_mb'):
        assert h[k] == [None]*3, (k, h[k])
    assert res['labels'] == ['RSS', 'peak RSS in epoch']

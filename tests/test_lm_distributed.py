"Two CPU processes under torchrun (gloo): each rank gets whole streams, disjoint, continuous, equally many batches"
import json, os, socket, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from fastai_memstream.store import DiskLMDataset
from fastai_memstream.lm import DiskLMDataLoader

SCRIPT = textwrap.dedent('''
    import os, sys, json, numpy as np, torch
    from pathlib import Path
    import torch.distributed as dist
    from fastai.text.all import *
    from fastai.distributed import *
    from fastai_memstream.lm import DiskLMDataLoader, DiskLMDataLoaders
    store, out = sys.argv[1], Path(sys.argv[2])
    rank = int(os.environ['RANK'])
    torch.set_num_threads(1)

    # 1. the loader alone: shard() inside an initialized process group; no seed given, so the ranks must agree on one
    dist.init_process_group('gloo')
    dl = DiskLMDataLoader(store, bs=4, seq_len=10, shuffle=True).shard()
    xs,ys = [],[]
    for epoch in range(2):
        for x,y in dl: xs.append(x.numpy()); ys.append(y.numpy())
    np.savez(out/f'loader{rank}.npz', **{f'x{i}': a for i,a in enumerate(xs)}, **{f'y{i}': a for i,a in enumerate(ys)})
    json.dump(dict(seed=dl.seed, n=len(xs), n_batches=len(dl), rank=dl.rank, world_size=dl.world_size), open(out/f'loader{rank}.json', 'w'))
    dist.barrier()   # accelerate reuses this process group

    # 2. through fastai: Learner + distrib_ctx (accelerate starts its own gloo group on CPU)
    class Rec(Callback):
        order = 100
        def before_fit(self): self.xs,self.model_type,self.seed = [],None,None
        def before_batch(self):
            if not self.training: return
            self.xs.append(self.x.cpu().numpy().copy())
            self.model_type,self.seed = type(self.learn.model).__name__,self.learn.dl.seed
    trn = DiskLMDataLoader(store, bs=4, seq_len=10, shuffle=True)
    dls = DiskLMDataLoaders(trn, DiskLMDataLoader(store, bs=4, seq_len=10), path=out, device='cpu')
    cfg = dict(awd_lstm_lm_config, emb_sz=16, n_hid=16, n_layers=1)
    learn = language_model_learner(dls, AWD_LSTM, config=cfg, pretrained=False, cbs=Rec())
    with learn.distrib_ctx(cpu=True):
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    r = learn.rec
    np.savez(out/f'learn{rank}.npz', **{f'x{i}': a for i,a in enumerate(r.xs)})
    json.dump(dict(seed=r.seed, n=len(r.xs), model=r.model_type, epoch=trn.epoch, valid_loss=float(learn.recorder.values[-1][1])),
              open(out/f'learn{rank}.json', 'w'))
''')

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def load(fn, key='x'):
    z = np.load(fn)
    return [z[f'{key}{i}'] for i in range(sum(k.startswith(key) for k in z.files))]

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dist')
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50, int(n)) for n in rng.integers(1, 40, 120)]
    ds = DiskLMDataset.from_token_docs(docs, tmp/'store', vocab=[f'w{i}' for i in range(50)], progress=False)
    (tmp/'script.py').write_text(SCRIPT)
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    out = subprocess.run([str(torchrun), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
                          str(tmp/'script.py'), str(ds.path), str(tmp)], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return tmp, ds

def check_shards(parts, ds, seed, n_epochs):
    "Per rank: same count; together, rank 0's rows then rank 1's are exactly the batches of one process with bs*2 (so the shares are disjoint)"
    assert len(parts[0]) == len(parts[1]) > 0
    whole = DiskLMDataLoader(ds, bs=8, seq_len=10, shuffle=True, seed=seed)
    ref = [b[0].numpy() for _ in range(n_epochs) for b in whole]
    assert len(ref) == len(parts[0])
    for i,(a,b,r) in enumerate(zip(*parts, ref)):
        np.testing.assert_array_equal(np.concatenate([a, b]), r, err_msg=f"batch {i}")
    per_epoch = len(ref)//n_epochs
    for p in parts:
        for i in range(per_epoch-1):
            assert not np.array_equal(p[i], p[i+1])
    return per_epoch

def test_loader_shards(run):
    tmp, ds = run
    meta = [json.loads((tmp/f'loader{r}.json').read_text()) for r in range(2)]
    assert meta[0]['seed'] == meta[1]['seed']                  # rank 0's seed was broadcast
    assert [m['rank'] for m in meta] == [0, 1] and all(m['world_size'] == 2 for m in meta)
    assert meta[0]['n'] == meta[1]['n'] == 2*meta[0]['n_batches']
    xs = [load(tmp/f'loader{r}.npz') for r in range(2)]
    ys = [load(tmp/f'loader{r}.npz', 'y') for r in range(2)]
    check_shards(xs, ds, meta[0]['seed'], 2)
    nb = meta[0]['n_batches']
    for r in range(2):
        for i in range(nb-1):                                   # each row continues into the next batch on its rank
            np.testing.assert_array_equal(ys[r][i][:, -1], xs[r][i+1][:, 0])
    # which streams each rank read: the positions of its rows in the single-process (bs=8) layout
    whole = DiskLMDataLoader(ds, bs=8, seq_len=10, shuffle=True, seed=meta[0]['seed'])
    b0 = next(iter(whole))[0].numpy()
    rows = [[next(k for k in range(8) if np.array_equal(b0[k], xs[r][0][j])) for j in range(4)] for r in range(2)]
    assert rows == [[0, 1, 2, 3], [4, 5, 6, 7]]

def test_learner_distrib_ctx(run):
    tmp, ds = run
    meta = [json.loads((tmp/f'learn{r}.json').read_text()) for r in range(2)]
    assert all(m['model'] == 'DistributedDataParallel' for m in meta)
    assert meta[0]['seed'] == meta[1]['seed'] and meta[0]['n'] == meta[1]['n']
    assert all(m['epoch'] == 2 for m in meta)                  # the original loader's epoch followed its shard's
    assert np.isfinite(meta[0]['valid_loss'])
    check_shards([load(tmp/f'learn{r}.npz') for r in range(2)], ds, meta[0]['seed'], 2)

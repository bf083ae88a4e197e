"Two CPU processes (gloo) under torchrun: `learn.distrib_ctx()` shards whole documents (time-step-major) and whole examples (windows) across ranks with equal step counts, and the SQuAD metrics count every example once"
import os, sys, json, subprocess, collections
from pathlib import Path
import pytest
pytest.importorskip('accelerate')

N_EX = 41   # odd: one rank's share must be padded

def _cache(tmp):
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from fastai_memstream.core import sample_data
    from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens
    from fastai_memstream.test_utils import make_test_xlnet_tokenizer
    tok = make_test_xlnet_tokenizer(tmp/'tok')
    configure_memory_tokens(tok, 2)
    cm = ChunkedCacheManager(tmp/'cache')
    StreamingSquadProcessor(tok, max_seq_length=96, doc_stride=32, max_query_length=32, progress=False, verbose=False).process_dataset_streaming(
        str(sample_data('squad-v2/dev-v2.0-subset.json')), 'validation', max_examples=N_EX, cache_manager=cm, name='squad_v2')
    return cm

def _torchrun(script, tmp_path):
    "Run `tests/<script> <cache> <out>` in two CPU processes under torchrun, on a fresh cache; (cache manager, out folder)"
    cm = _cache(tmp_path)
    out = tmp_path/'out'; out.mkdir()
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
    r = subprocess.run([str(torchrun), '--standalone', '--nproc_per_node=2', str(Path(__file__).parent/script),
                        str(cm.cache_dir), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return cm,out

def test_two_ranks_shard_documents(tmp_path):
    cm,out = _torchrun('_squad_fastai_ddp.py', tmp_path)
    res = [json.loads((out/f'rank{i}.json').read_text()) for i in range(2)]
    assert all(x['world'] == 2 and x['backend'] == 'gloo' for x in res), [(x['world'], x['backend']) for x in res]
    from fastai_memstream.squad_fastai import SquadFeatures
    feats = SquadFeatures.from_cache(cm.cache_dir, 'squad_v2', 'validation')
    n_win = dict(zip(feats.doc_example_ids, (int(n) for n in feats.doc_lengths)))
    assert len(n_win) == N_EX
    for run,dl_type in (('memory', 'TimeStepMajorDataLoader'), ('windows', 'SquadDataLoader')):
        rr = [x['runs'][run] for x in res]
        assert all(x['ddp'] for x in rr), run                                     # the model was wrapped in DDP
        assert all(x['dl_types'] == [dl_type] for x in rr), [x['dl_types'] for x in rr]   # the loader sharded itself (no DistributedDL)
        for split in ('train', 'valid'):
            assert rr[0]['steps'][split] == rr[1]['steps'][split] > 0, (run, split)   # equal step counts
            scored = [collections.Counter(i for i in x['ids'][split] if i is not None) for x in rr]
            assert not set(scored[0]) & set(scored[1]), (run, split)               # whole examples: none scored on both ranks
            for c in scored: assert all(k <= n_win[e] for e,k in c.items()), (run, split)   # a window at most once
            if split == 'valid' or run == 'memory':                               # (training windows drop an incomplete last batch)
                assert scored[0] + scored[1] == collections.Counter(n_win), (run, split)   # every window of every example, once
        v0,v1 = rr[0]['values'],rr[1]['values']                                   # train_loss, valid_loss, exact, f1, total, HasAns_total, NoAns_total
        assert v0[2:] == v1[2:], (run, v0, v1)                                    # SQuAD metrics all-reduced: same scores on both ranks
        assert v0[4] == N_EX and v0[5] + v0[6] == N_EX, (run, v0)                 # every question counted once, none twice
        w = rr[0]['whole']                                                        # one process on the whole split, same weights
        assert w[3:] == v0[4:], (run, w, v0)
        assert abs(w[1] - v0[2]) <= 100/N_EX + 1e-6 and abs(w[2] - v0[3]) <= 100/N_EX + 1e-6, (run, w, v0)   # at most one answer flips by batching

def test_trainer_under_torchrun_trains_on_shares(tmp_path):
    "The guide's `XLNetRecurrentTrainer(config).train()` launched by torchrun trains through `distrib_ctx`: DDP, disjoint documents, one save"
    cm,out = _torchrun('_squad_trainer_ddp.py', tmp_path)
    res = [json.loads((out/f'trainer{i}.json').read_text()) for i in range(2)]
    assert [x['world'] for x in res] == [2, 2] and all(x['ddp'] for x in res)        # each rank's model was wrapped in DDP
    ids = [set(i for i in x['ids'] if i is not None) for x in res]
    assert ids[0] and ids[1] and not ids[0] & ids[1]                                  # documents sharded, none trained (and scored) on both
    assert len(ids[0] | ids[1]) == N_EX                                               # together, every document
    assert res[0]['metrics'] == res[1]['metrics']                                     # scores all-reduced
    assert (out/'model'/'model.safetensors').exists() and (out/'model'/'memory.safetensors').exists()

"Two CPU processes (gloo) under torchrun: `learn.distrib_ctx()` shards documents across ranks with equal step counts"
import os, sys, json, subprocess, shutil
from pathlib import Path
import pytest
pytest.importorskip('accelerate')

def _cache(tmp):
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from fastai_memstream.core import sample_data
    from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, configure_memory_tokens, make_test_xlnet_tokenizer
    tok = make_test_xlnet_tokenizer(tmp/'tok')
    configure_memory_tokens(tok, 2)
    cm = ChunkedCacheManager(tmp/'cache')
    StreamingSquadProcessor(tok, max_seq_length=96, doc_stride=32, max_query_length=32, progress=False, verbose=False).process_dataset_streaming(
        str(sample_data('squad-v2/dev-v2.0-subset.json')), 'validation', max_examples=41, cache_manager=cm, name='squad_v2')
    return cm

def test_two_ranks_shard_documents(tmp_path):
    cm = _cache(tmp_path)
    out = tmp_path/'out'; out.mkdir()
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1'}
    r = subprocess.run([str(torchrun), '--standalone', '--nproc_per_node=2', str(Path(__file__).parent/'_squad_fastai_ddp.py'),
                        str(cm.cache_dir), str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    res = [json.loads((out/f'rank{i}.json').read_text()) for i in range(2)]
    assert all(x['ddp'] and x['world'] == 2 and x['backend'] == 'gloo' for x in res), [(x['ddp'], x['world'], x['backend']) for x in res]
    from fastai_memstream.squad_fastai import SquadFeatures
    feats = SquadFeatures.from_cache(cm.cache_dir, 'squad_v2', 'validation')
    all_docs = set(feats.doc_example_ids)
    for split in ('train', 'valid'):
        assert res[0]['steps'][split] == res[1]['steps'][split] > 0               # equal step counts
        docs = [{i for i in x['ids'][split] if i is not None} for x in res]
        assert docs[0] | docs[1] == all_docs                                      # every document is seen
        assert len(docs[0] & docs[1]) <= 1                                        # sharded (one repeated to even 41 documents out)
        for x in res:                                                             # each window of a rank's documents exactly once
            w = [i for i in x['ids'][split] if i is not None]
            assert len(w) == sum(int(n) for e,n in zip(feats.doc_example_ids, feats.doc_lengths) if e in set(w))
    assert res[0]['values'][2:] == res[1]['values'][2:]                           # SQuAD metrics all-reduced: same scores on both ranks

"""The SQuAD processor under torchrun (issue 13): without `rank`/`world_size` it takes them from the initialized process group, each
process writes its shard, and every process can load the whole split as soon as the call returns. Same features as one process."""
import os, sys, json, socket, subprocess
from pathlib import Path
import pytest
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
from test_squad_oracle import squad_rows

SCRIPT = """
import os, sys, json; os.environ['HF_HUB_OFFLINE'] = os.environ['HF_DATASETS_OFFLINE'] = '1'
import torch.distributed as dist
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager
dist.init_process_group('gloo')
tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
p = StreamingSquadProcessor(tok, 128, 32, streaming_chunk_size=40, progress=False, verbose=False)
cm = ChunkedCacheManager(sys.argv[1], chunk_size=25)
n = p.process_dataset_streaming(str(sample_data('squad-v2/dev-v2.0-subset.json')), 'validation', cache_manager=cm, name='sq')
ds = cm.load('sq', 'validation')          # right after the call: every shard is committed (the call waits for the group)
from pathlib import Path   # one file per rank: torchrun interleaves the processes' stdout
(Path(sys.argv[1]).parent/f'res{dist.get_rank()}.json').write_text(json.dumps(dict(rank=dist.get_rank(), n=n, total=len(ds))))
dist.destroy_process_group()
"""

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_processor_takes_rank_from_the_process_group(tmp_path):
    (tmp_path/'script.py').write_text(SCRIPT)
    torchrun = Path(sys.executable).parent/'torchrun'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    out = subprocess.run([str(torchrun), '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
                          str(tmp_path/'script.py'), str(tmp_path/'cache')], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    res = [json.loads((tmp_path/f'res{r}.json').read_text()) for r in (0, 1)]
    assert [r['rank'] for r in res] == [0, 1]
    cm = ChunkedCacheManager(tmp_path/'cache')
    m = cm.manifest('sq', 'validation')
    assert len(m['shards']) == 2                                        # one shard per process, not two whole caches
    ds = cm.load('sq', 'validation')
    assert res[0]['total'] == res[1]['total'] == len(ds) == res[0]['n'] + res[1]['n']
    tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    ref,_ = StreamingSquadProcessor(tok, 128, 32, progress=False, verbose=False).featurize(squad_rows())
    key = lambda r: (r['example_id'], r['segment_index'])
    by = {key(r): r for r in ref}
    assert sorted(map(key, ds)) == sorted(by) and all(r == by[key(r)] for r in ds)   # the same features as one process

def test_outside_a_group_nothing_changes(tmp_path):
    "No process group (or `distributed=False`): one unsharded cache, as before"
    tok = AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))
    p = StreamingSquadProcessor(tok, 128, 32, progress=False, verbose=False)
    cm = ChunkedCacheManager(tmp_path)
    p.process_dataset_streaming(squad_rows()[:20], 'validation', cache_manager=cm, name='one', distributed=False)
    assert 'shards' not in cm.manifest('one', 'validation') and (cm.split_dir('one', 'validation')/'manifest.json').exists()
    with pytest.raises(ValueError, match='distributed=True needs'):
        p.process_dataset_streaming(squad_rows()[:20], 'validation', cache_manager=cm, name='two', distributed=True)

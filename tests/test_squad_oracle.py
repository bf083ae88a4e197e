"""The SQuAD processor against an independent oracle: the transformers `run_qa.py` preprocessing recipe (`run_qa_recipe.py`,
shared with the benchmark), run through `datasets.map(batched=True)`; features must match token for token on clean data, for
BERT-style and XLNet-style tokenizers."""
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest, datasets
datasets.disable_progress_bars()
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.squad import StreamingSquadProcessor, make_test_xlnet_tokenizer, configure_memory_tokens
import run_qa_recipe

def squad_rows(fn=None):
    "Flat rows (one per question) of a nested SQuAD JSON (default: the shipped sample), read with plain `json`"
    return run_qa_recipe.squad_rows(fn or sample_data('squad-v2/dev-v2.0-subset.json'))

def run_qa_features(tokenizer, rows, max_seq_length, doc_stride):
    "The recipe's features of `rows`, with what the comparison reads off them: `cls_index`, the context mask, offsets as [-1, -1] outside the context"
    ref = run_qa_recipe.run_qa_features(tokenizer, datasets.Dataset.from_list(rows), max_seq_length, doc_stride)
    def extras(b):
        return dict(cls_index=[ids.index(tokenizer.cls_token_id) for ids in b['input_ids']],
                    ctx_mask=[[o is not None for o in offs] for offs in b['offset_mapping']],
                    offset_mapping=[[[-1, -1] if o is None else list(o) for o in offs] for offs in b['offset_mapping']])
    return ref.map(extras, batched=True)

def pad_features(f, tok, max_len):
    "Our unpadded feature padded the way the recipe pads (tokenizer's side), positions shifted for left padding"
    n = max_len - len(f['input_ids'])
    left = tok.padding_side == 'left'
    pad = lambda xs, v: ([v]*n + list(xs)) if left else (list(xs) + [v]*n)
    sh = n if left else 0
    return dict(input_ids=pad(f['input_ids'], tok.pad_token_id), attention_mask=pad(f['attention_mask'], 0),
                token_type_ids=pad(f['token_type_ids'], tok.pad_token_type_id), offset_mapping=pad(f['offset_mapping'], [-1, -1]),
                start_positions=f['start_positions'] + sh, end_positions=f['end_positions'] + sh, cls_index=f['cls_index'] + sh,
                example_id=f['example_id'])

@pytest.fixture(scope='module')
def bert(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

@pytest.fixture(scope='module')
def xlnet(tmp_path_factory): return make_test_xlnet_tokenizer(tmp_path_factory.mktemp('xlnet'))

def compare(tok, rows, msl, stride):
    proc = StreamingSquadProcessor(tok, msl, stride, streaming_chunk_size=37, progress=False, verbose=False)
    ours,_ = proc.featurize(rows)
    ref = run_qa_features(tok, rows, msl, stride)
    assert len(ours) == len(ref) and len(ref) > len(rows)
    bugs = 0
    for f, r in zip(ours, ref):
        p = pad_features(f, tok, msl)
        for k in ('input_ids', 'attention_mask', 'token_type_ids', 'offset_mapping', 'cls_index', 'example_id', 'end_positions'):
            assert p[k] == r[k], (k, f['example_id'], f['segment_index'])
        if p['start_positions'] != r['start_positions']:
            # run_qa's start scan runs past the last context token when the answer starts in it (offsets of the special and
            # padding tokens after the context are (0, 0) <= start_char): the recipe labels a non-context token there
            assert not r['ctx_mask'][r['start_positions']] and r['ctx_mask'][p['start_positions']]
            assert p['start_positions'] <= p['end_positions']
            bugs += 1
        else: assert p['start_positions'] == r['start_positions']
    assert bugs <= len(ref) // 50
    return len(ref), bugs

@pytest.mark.parametrize('msl,stride', [(384, 128), (128, 32)])
def test_oracle_bert(bert, msl, stride):
    n, bugs = compare(bert, squad_rows(), msl, stride)
    print(f"BERT {msl}/{stride}: {n} features equal to run_qa ({bugs} where run_qa's start label leaves the context)")

@pytest.mark.parametrize('msl,stride', [(384, 128), (128, 32)])
def test_oracle_xlnet(xlnet, msl, stride):
    assert xlnet.padding_side == 'left'
    n, bugs = compare(xlnet, squad_rows(), msl, stride)
    print(f"XLNet {msl}/{stride}: {n} features equal to run_qa ({bugs} where run_qa's start label leaves the context)")

@pytest.mark.parametrize('which', ['bert', 'xlnet'])
def test_long_context_pieces_tokenize_like_one_call(which, request):
    "Contexts beyond _LONG_CONTEXT characters are tokenized in pieces cut before whitespace: same ids and offsets as one call"
    tok = request.getfixturevalue(which)
    proc = StreamingSquadProcessor(tok, progress=False, verbose=False)
    text = sample_data('wikitext-2/valid.txt').read_text(encoding='utf-8')[:300_000]
    ids,offs = proc._encode_long(text, piece=5000)
    whole = proc._bt.encode(text, add_special_tokens=False)
    assert ids.tolist() == whole.ids and [tuple(o) for o in offs.tolist()] == whole.offsets

def test_streamed_cache_equals_run_qa(bert, tmp_path):
    "The streaming path (nested JSON reader, small chunks, cache files, memory-mapped load) gives the recipe's features too"
    from fastai_memstream.squad import ChunkedCacheManager
    cm = ChunkedCacheManager(tmp_path, chunk_size=7)
    proc = StreamingSquadProcessor(bert, 128, 32, streaming_chunk_size=23, progress=False, verbose=False)
    n = proc.process_dataset_streaming(sample_data('squad-v2/dev-v2.0-subset.json'), 'validation', cache_manager=cm)
    ds = cm.load(sample_data('squad-v2/dev-v2.0-subset.json'), 'validation')
    ref = run_qa_features(bert, squad_rows(), 128, 32)
    assert n == len(ds) == len(ref)
    # each streamed chunk of 23 examples is committed as files of at most 7 examples (an example is never split across files)
    n_files = len(list(cm.split_dir(sample_data('squad-v2/dev-v2.0-subset.json'), 'validation').glob('features-*.arrow')))
    assert n_files == 9*4 + 1 == len(cm.manifest(sample_data('squad-v2/dev-v2.0-subset.json'), 'validation')['chunks'])
    for f, r in zip(ds, ref):
        p = pad_features(f, bert, 128)
        assert all(p[k] == r[k] for k in ('input_ids', 'token_type_ids', 'offset_mapping', 'start_positions', 'end_positions', 'example_id'))

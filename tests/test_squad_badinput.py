"""Bad input for the SQuAD processor (issue 5, "Bad input"): each case is handled (repaired and counted, labelled
unanswerable and counted, skipped and counted, or a clear error) and never gives a crash or a label on a span that is not
the answer."""
import os, json, random, threading, time, unicodedata, re
os.environ.setdefault('HF_HUB_OFFLINE', '1'); os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
import numpy as np, pytest
from transformers import AutoTokenizer
from fastai_memstream.core import sample_data
from fastai_memstream.memory import MemorySampler
from fastai_memstream.squad import StreamingSquadProcessor, ChunkedCacheManager, BadRecordError, place_answer
from test_squad_oracle import squad_rows

CTX = "The Normans were in Normandy, a region in France. In 911 the Normans gave their name to Normandy. Normandy is green."

@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(str(sample_data('bert-base-uncased')))

@pytest.fixture(scope='module')
def proc(tok): return StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)

def row(**kw):
    r = dict(id='q1', title='Normans', context=CTX, question='Where were the Normans?', answers={'text': ['Normandy'], 'answer_start': [20]})
    return {**r, **kw}

def norm(s): return re.sub(r'\s+', ' ', unicodedata.normalize('NFKD', s)).strip().lower()

def labelled_spans(feats, exs):
    "Context text under each answer label (None for a CLS label)"
    ctx = {e['example_id']: e['context'] for e in exs}
    out = []
    for f in feats:
        if f['start_positions'] == f['cls_index']: out.append(None); continue
        o = f['offset_mapping']
        assert o[f['start_positions']][0] >= 0 and o[f['end_positions']][1] >= 0, 'label on a token outside the context'
        out.append(ctx[f['example_id']][o[f['start_positions']][0]:o[f['end_positions']][1]])
    return out

def one(proc, r, **kw):
    feats,exs = proc.featurize([r], **kw)
    return feats,exs,labelled_spans(feats, exs),proc.stats

def test_clean_answer_is_exact(proc):
    _,exs,spans,st = one(proc, row())
    assert st['answers_repaired'] == 0 and st['answerable'] == 1
    assert [s for s in spans if s] == ['Normandy'] and exs[0]['answers'] == {'text': ['Normandy'], 'answer_start': [20]}

def test_missing_answers(proc):
    r = row(); del r['answers']
    _,exs,spans,st = one(proc, r)
    assert all(s is None for s in spans)
    assert st['answers_missing'] == 1 and st['unanswerable'] == 1 and st['answerable'] == 0
    assert exs[0]['is_impossible'] and exs[0]['answers'] == {'text': [], 'answer_start': []}

@pytest.mark.parametrize('start', [-5, 10_000, 200, 75, 90, 3, 21])
def test_wrong_start_repaired_to_nearest(proc, start):
    occ = [m.start() for m in re.finditer('Normandy', CTX)]
    assert len(occ) == 3
    where = min(occ, key=lambda o: abs(o - start))
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [start]}))
    assert st['answers_repaired'] == 1 and st['answerable'] == 1
    assert exs[0]['answers']['answer_start'] == [where] and CTX[where:where+8] == 'Normandy'
    assert [s for s in spans if s] == ['Normandy']

def test_float_start(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [20.0]}))
    assert st['answer_starts_coerced'] == 1 and st['answers_repaired'] == 0 and [s for s in spans if s] == ['Normandy']
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [20.5]}))  # not integral: found by its text
    assert st['answer_starts_coerced'] == 0 and st['answers_repaired'] == 1 and [s for s in spans if s] == ['Normandy']

def test_string_start(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': ['20']}))
    assert st['answer_starts_coerced'] == 1 and st['answers_repaired'] == 0 and exs[0]['answers']['answer_start'] == [20]
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': ['twenty']}))
    assert st['answers_repaired'] == 1 and [s for s in spans if s] == ['Normandy']
    _,exs,spans,st = one(proc, row(answers={'text': ['Normandy'], 'answer_start': [True]}))  # a bool is not a position
    assert st['answers_repaired'] == 1 and st['answer_starts_coerced'] == 0

@pytest.mark.parametrize('text', ['', '   ', 'Vikings of Iceland', None, 155])
def test_unplaceable_answer_is_unanswerable(proc, text):
    _,exs,spans,st = one(proc, row(answers={'text': [text], 'answer_start': [20]}))
    assert all(s is None for s in spans)
    assert st['answers_unplaced'] == 1 and st['unanswerable'] == 1 and exs[0]['answers']['answer_start'] == [-1]

def test_second_answer_used_when_first_unplaceable(proc):
    _,exs,spans,st = one(proc, row(answers={'text': ['Vikings', 'France'], 'answer_start': [0, 42]}))
    assert [s for s in spans if s] == ['France'] and st['answers_unplaced'] == 0 and exs[0]['answers']['answer_start'] == [-1, 42]

def test_unicode_and_whitespace_repair(proc):
    ctx = "Caf\u00e9 culture   spread\u00a0quickly in Paris, the \ufb01nal word."
    for text in ('Cafe\u0301 culture', 'culture spread quickly', 'final word', 'spread\tquickly'):
        p = place_answer(ctx, text, 0)
        assert p is not None and p[2] == 'repaired', text
        assert norm(ctx[p[0]:p[1]]) == norm(text)
    _,exs,spans,st = one(proc, dict(id='u', context=ctx, question='What spread?', answers={'text': ['culture spread quickly'], 'answer_start': [0]}))
    assert st['answers_repaired'] == 1 and norm(next(s for s in spans if s)) == 'culture spread quickly'

@pytest.mark.parametrize('field,value,msg', [('context', '', 'empty context'), ('context', '   \n', 'empty context'),
                                             ('question', '', 'empty question'), ('question', '  ', 'empty question'),
                                             ('context', 123, "'context' must be a string"), ('question', None, "'question' must be a string"),
                                             ('context', ['a'], "'context' must be a string"), ('id', None, "'id' must be"),
                                             ('answers', 'Normandy', "'answers' must be")])
def test_bad_records(tok, field, value, msg):
    bad = row(**{'id': 'bad', field: value})
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    with pytest.raises(BadRecordError) as e: p.featurize([row(), bad])
    assert msg in str(e.value) and "on_bad_record='skip'" in str(e.value) and 'record 1' in str(e.value)
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False, on_bad_record='skip')
    feats,exs = p.featurize([row(), bad, row(id='q3')])
    assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 2 and exs['example_id'] == ['q1', 'q3']
    assert msg in p.rejected[0]

def test_non_string_id_and_title(proc):
    feats,exs,spans,st = one(proc, row(id=42, title=7))
    assert st['ids_coerced'] == 1 and exs[0]['example_id'] == '42' and exs[0]['title'] == '7' and set(feats['example_id']) == {'42'}

def test_long_question_truncated(tok):
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    q = 'Where were the Normans ' + 'and where else ' * 30 + '?'
    feats,exs = p.featurize([row(question=q), row(id='q2')])
    assert p.stats['questions_truncated'] == 1
    qtoks = tok(q.lstrip(), add_special_tokens=False)['input_ids']
    f = feats[0]
    assert f['input_ids'][1:17] == qtoks[:16] and f['input_ids'][17] == tok.sep_token_id  # [CLS] 16 question tokens [SEP] context
    assert all(len(x) <= 64 for x in feats['input_ids'])
    assert [s for s in labelled_spans(feats, exs) if s][:1] == ['Normandy']

def test_duplicate_ids(proc):
    feats,exs = proc.featurize([row(), row(question='Where is Normandy?'), row(question='Which region?'), row(id='q1-dup1', question='x?')])
    assert exs['example_id'] == ['q1', 'q1-dup1', 'q1-dup2', 'q1-dup1-dup1']
    assert proc.stats['duplicate_ids'] == 3 and proc.stats['examples'] == 4
    assert set(feats['example_id']) == set(exs['example_id'])

def test_malformed_json_line(tok, tmp_path):
    fn = tmp_path/'bad.jsonl'
    lines = [json.dumps(row(id=f'q{i}')) for i in range(5)]
    lines[2] = '{"id": "q2", "context": "oops'
    fn.write_text('\n'.join(lines) + '\n')
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False)
    with pytest.raises(ValueError) as e: p.process_dataset_streaming(fn)
    assert str(fn) in str(e.value) and 'line 3' in str(e.value) and "on_bad_record='skip'" in str(e.value)
    p.on_bad_record = 'skip'
    cm = ChunkedCacheManager(tmp_path/'c')
    p.process_dataset_streaming(fn, cache_manager=cm)
    assert p.stats['records_rejected'] == 1 and p.stats['examples'] == 4
    assert cm.load_examples(fn, 'train')['example_id'] == ['q0', 'q1', 'q3', 'q4']
    assert cm.manifest(fn, 'train')['counts']['records_rejected'] == 1
    assert 'line 3' in p.rejected[0]

def test_malformed_nested_json(tok, tmp_path):
    fn = tmp_path/'bad.json'
    txt = sample_data('squad-v2/dev-v2.0-subset.json').read_text()
    i = txt.index('"question"', 5000)
    fn.write_text(txt[:i] + txt[i+1:])  # drop a quote
    p = StreamingSquadProcessor(tok, 64, 16, max_query_length=16, progress=False, verbose=False, on_bad_record='skip')
    with pytest.raises(ValueError) as e: p.process_dataset_streaming(fn)
    assert str(fn) in str(e.value) and f"line {txt[:i].count(chr(10)) + 1}" in str(e.value)

def test_not_a_fast_tokenizer():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    slow = BertTokenizerLegacy(vocab_file=str(sample_data('bert-base-uncased')/'vocab.txt'))
    with pytest.raises(TypeError) as e: StreamingSquadProcessor(slow)
    assert 'not a fast tokenizer' in str(e.value) and 'offsets' in str(e.value) and 'use_fast=True' in str(e.value)

def test_settings_errors(tok):
    with pytest.raises(ValueError, match='must exceed doc_stride'): StreamingSquadProcessor(tok, 128, 64, verbose=False)
    with pytest.raises(ValueError, match='streaming_chunk_size'): StreamingSquadProcessor(tok, streaming_chunk_size=0, verbose=False)
    with pytest.raises(ValueError, match='on_bad_record'): StreamingSquadProcessor(tok, on_bad_record='ignore', verbose=False)
    with pytest.raises(ValueError, match='max_memory_gb'): StreamingSquadProcessor(tok, max_memory_gb=-1, verbose=False)
    p = StreamingSquadProcessor(tok, verbose=False, progress=False)
    with pytest.raises(FileNotFoundError): p.process_dataset_streaming('./no/such/file.json')
    with pytest.raises(ValueError, match='max_n_segs'): p.process_dataset_streaming([row()], max_n_segs=0)
    with pytest.raises(ValueError, match="pass name="): p.process_dataset_streaming([row()], cache_manager=ChunkedCacheManager('/tmp/x'))
    p.streaming_chunk_size = -3
    with pytest.raises(ValueError, match='streaming_chunk_size'): p.process_dataset_streaming([row()])

def corrupt(rows, rng):
    "Random damage to the gold answers of clean rows: wrong/negative/huge/float/string starts, whitespace and unicode variants, absent texts"
    out = []
    for r in rows:
        a = r['answers']
        if not a['text']: out.append(r); continue
        t,s = a['text'][0],a['answer_start'][0]
        k = rng.randrange(8)
        if k == 0: s = s + rng.choice([-7, -1, 1, 13, 250])
        elif k == 1: s = -rng.randrange(1, 100)
        elif k == 2: s = 10**6
        elif k == 3: s = float(s)
        elif k == 4: s = str(s + rng.choice([0, 3]))
        elif k == 5: t = t.replace(' ', '\u00a0  ')
        if k == 6: out.append({**r, 'answers': {'text': [t + ' zzqx'], 'answer_start': [s]}}); continue
        out.append({**r, 'answers': {'text': [t] + a['text'][1:], 'answer_start': [s] + a['answer_start'][1:]}})
    return out

@pytest.mark.parametrize('seed', [0, 1])
def test_property_labels_point_at_the_answer(tok, seed):
    "For every answerable feature, the context under the label contains (normalized) one of the gold answer texts"
    rng = random.Random(seed)
    rows = corrupt(squad_rows(), rng)
    p = StreamingSquadProcessor(tok, 128, 32, progress=False, verbose=False)
    feats,exs = p.featurize(rows)
    feats,exs = list(feats),list(exs)
    golds = {e['example_id']: e['answers']['text'] for e in exs}
    n = 0
    for f,span in zip(feats, labelled_spans(feats, exs)):
        if span is None: continue
        n += 1
        assert any(isinstance(g, str) and g.strip() and norm(g) in norm(span) for g in golds[f['example_id']]), (span, golds[f['example_id']])
    st = p.stats
    assert n > 50 and st['answers_repaired'] > 10 and st['answers_unplaced'] > 0 and st['answer_starts_coerced'] > 0
    # every example with a placeable answer keeps it; one without any is unanswerable in every window
    by_ex = {}
    for f in feats: by_ex.setdefault(f['example_id'], []).append(f)
    for e in exs:
        placed = any(s >= 0 for s in e['answers']['answer_start'])
        fs = by_ex[e['example_id']]
        if not placed: assert all(f['start_positions'] == f['cls_index'] for f in fs)

def test_few_mb_context_streams_in_bounded_memory(tok):
    "A 4 MB context: its windows are built at once but as compact arrays; peak RSS growth is measured and bounded"
    text = ' '.join(sample_data('wikitext-2/valid.txt').read_text().split())
    ctx = ' '.join([text]*4)[:4_000_000]
    ans_at = ctx.index(' ', 3_000_000) + 1
    ans = ctx[ans_at:ctx.index(' ', ans_at)]
    r = dict(id='big', context=ctx, question='What is in the middle?', answers={'text': [ans], 'answer_start': [ans_at]})
    p = StreamingSquadProcessor(tok, 384, 128, progress=False, verbose=False)
    with MemorySampler(interval=0.01) as ms:
        base = ms.current_mb
        feats,exs = p.featurize([r])
    grow = ms.peak_mb - base
    ids = feats['input_ids']
    n_ctx = [sum(o[0] >= 0 for o in f) for f in feats['offset_mapping']]
    assert len(feats) > 1000 and all(len(x) <= 384 for x in ids)
    assert all(n == n_ctx[0] for n in n_ctx[:-1])  # full windows
    spans = [s for s in labelled_spans(feats, exs) if s]
    assert spans and all(ans in s for s in spans)
    print(f"4 MB context: {len(feats)} windows, peak RSS growth {grow:.0f} MB")
    assert grow < 500, grow

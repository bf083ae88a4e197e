"""The transformers `run_qa.py` preprocessing recipe, written out from its definition, and the SQuAD rows it is run on.

One copy serves both the oracle of `tests/test_squad_oracle.py` and the baseline of `bench/bench_squad.py`. It is independent
of `fastai_memstream.squad` on purpose (plain `json` reads the nested SQuAD file, the tokenizer's own pair encoding with
`return_overflowing_tokens` makes the windows, the recipe's scans find the labels): keep it that way, or the oracle
compares the package with itself."""
import json

def squad_rows(fn):
    "Flat rows (one per question) of a nested SQuAD JSON file, read whole with plain `json`"
    with open(fn, encoding='utf-8') as f: d = json.load(f)
    return [dict(id=qa['id'], title=a['title'], context=p['context'], question=qa['question'],
                 answers=dict(text=[x['text'] for x in qa['answers']], answer_start=[x['answer_start'] for x in qa['answers']]))
            for a in d['data'] for p in a['paragraphs'] for qa in p['qas']]

def repeated_rows(rows, n_copies):
    "`rows` `n_copies` times, ids made unique and each copy's contexts made distinct (prefixed with 'Copy k. ', answer starts shifted)"
    for k in range(n_copies):
        pre = f"Copy {k}. "
        for r in rows:
            yield dict(r, id=f"{r['id']}-{k}", context=pre + r['context'],
                       answers=dict(text=r['answers']['text'], answer_start=[s + len(pre) for s in r['answers']['answer_start']]))

def run_qa_prepare(tokenizer, max_seq_length, doc_stride):
    """`run_qa.py`'s `prepare_train_features` (start/end positions, the CLS index when the window doesn't hold the answer) with
    `prepare_validation_features`' `example_id` and context offsets (None outside the context), as one batched function"""
    pad_on_right = tokenizer.padding_side == 'right'
    ctx = 1 if pad_on_right else 0
    def prepare(examples):
        examples['question'] = [q.lstrip() for q in examples['question']]
        tk = tokenizer(examples['question' if pad_on_right else 'context'], examples['context' if pad_on_right else 'question'],
                       truncation='only_second' if pad_on_right else 'only_first', max_length=max_seq_length, stride=doc_stride,
                       return_overflowing_tokens=True, return_offsets_mapping=True, padding='max_length',
                       return_token_type_ids=True)  # the default for BERT-style tokenizers, not for XLNet's
        sample_mapping = tk.pop('overflow_to_sample_mapping')
        tk['start_positions'],tk['end_positions'],tk['example_id'] = [],[],[]
        for i, offsets in enumerate(tk['offset_mapping']):
            input_ids = tk['input_ids'][i]
            cls_index = input_ids.index(tokenizer.cls_token_id)
            sequence_ids = tk.sequence_ids(i)
            answers = examples['answers'][sample_mapping[i]]
            if len(answers['answer_start']) == 0: s = e = cls_index
            else:
                start_char = answers['answer_start'][0]
                end_char = start_char + len(answers['text'][0])
                ts = 0
                while sequence_ids[ts] != ctx: ts += 1
                te = len(input_ids) - 1
                while sequence_ids[te] != ctx: te -= 1
                if not (offsets[ts][0] <= start_char and offsets[te][1] >= end_char): s = e = cls_index
                else:
                    while ts < len(offsets) and offsets[ts][0] <= start_char: ts += 1
                    s = ts - 1
                    while offsets[te][1] >= end_char: te -= 1
                    e = te + 1
            tk['start_positions'].append(s); tk['end_positions'].append(e)
            tk['example_id'].append(examples['id'][sample_mapping[i]])
            tk['offset_mapping'][i] = [o if sequence_ids[k] == ctx else None for k, o in enumerate(offsets)]
        return tk
    return prepare

def run_qa_features(tokenizer, ds, max_seq_length, doc_stride, **map_kwargs):
    "The recipe through `datasets.map(batched=True)` over a `datasets.Dataset` of rows"
    return ds.map(run_qa_prepare(tokenizer, max_seq_length, doc_stride), batched=True, remove_columns=ds.column_names, **map_kwargs)

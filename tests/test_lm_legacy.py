"The memory-efficient DataLoader notebook's own workflow (../shared/reference), with its names and calls, on the shipped WikiText sample"
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from operator import attrgetter
import numpy as np, pandas as pd, torch
from fastai.text.all import (Tokenizer, Numericalize, Datasets, LMDataLoader, LMTensorText, range_of, awd_lstm_lm_config, AWD_LSTM,
                             get_language_model, default_device, Adam, CrossEntropyLossFlat)
from fastai_memstream.store import DiskLMDataset, wikitext_df
from fastai_memstream.lm import DiskLMDataLoaders, DiskLMDataLoaderDataset, MemoryEfficientLMDataLoader

def test_reference_notebook_workflow(tmp_path):
    texts = wikitext_df(n_articles=8).text.tolist()
    df_train, df_valid = pd.DataFrame({0: texts[:6]}), pd.DataFrame({0: texts[6:]})   # as `pd.read_csv(..., header=None)` reads them
    df_all = pd.concat([df_train, df_valid])
    splits = [list(range_of(df_train)), list(range(len(df_train), len(df_all)))]
    tok, num = Tokenizer.from_df(0), Numericalize()
    dsets = Datasets(df_all, [[attrgetter("text"), tok, num]], splits=splits)
    vocab = num.vocab

    # 3. unroll to disk (the notebook pickled the vocabulary: here it is JSON)
    cache_base = tmp_path/'lm_cache'
    train_disk = DiskLMDataset.from_datasets(dsets, cache_base/'train', split_idx=0, vocab=vocab)
    valid_disk = DiskLMDataset.from_datasets(dsets, cache_base/'valid', split_idx=1, vocab=vocab)
    assert train_disk.built and not DiskLMDataset.from_datasets(dsets, cache_base/'train', split_idx=0, vocab=vocab).built
    assert len(train_disk.vocab) == len(vocab) and train_disk.total_tokens + valid_disk.total_tokens == sum(len(o[0]) for o in dsets)
    assert [train_disk.vocab[i] for i in train_disk[:20]] == [vocab[i] for i in dsets.train[0][0][:20]]
    assert not (cache_base/'train'/'vocab.pkl').exists()

    # 4. the item view and the loader, with the notebook's arguments
    bs, sl = 16, 20
    ref = list(LMDataLoader(dsets.train, bs=bs, seq_len=sl))
    ids = DiskLMDataLoaderDataset(train_disk, bs=bs, seq_len=sl)
    assert len(ids) == ids.n_batches*bs == len(ref)*bs and ids.corpus == ids.bl*bs
    x, y = ids[bs + 1]                                    # row 1 of batch 1
    assert type(x) is LMTensorText and torch.equal(x, ref[1][0][1]) and torch.equal(y, ref[1][1][1])
    ids.shuffle()
    order = ids.doc_order
    sref = list(LMDataLoader([dsets.train[int(i)][0] for i in order], bs=bs, seq_len=sl))
    assert torch.equal(torch.stack([ids[bs*2 + r][0] for r in range(bs)]), sref[2][0])
    train_dl = MemoryEfficientLMDataLoader(train_disk, bs=bs, seq_len=sl, num_workers=0, shuffle=True)
    valid_dl = MemoryEfficientLMDataLoader(valid_disk, bs=bs, seq_len=sl, num_workers=0, shuffle=False)
    assert (len(train_dl), len(valid_dl)) == (len(ref), len(LMDataLoader(dsets.valid, bs=bs, seq_len=sl)))
    train_dl.show_batch(max_n=2)
    x, y = train_dl.one_batch()
    assert x.shape == y.shape == (bs, sl)
    assert train_dl.decode(x[0][:50]) == ' '.join(vocab[i] for i in x[0][:50])

    # 5. fastai DataLoaders, both ways
    dls = DiskLMDataLoaders.from_cache(cache_base, bs=bs, seq_len=sl, num_workers=0)
    legacy = DiskLMDataLoaders(train_dl, valid_dl, train_disk.vocab, default_device())
    assert len(dls.vocab) == len(legacy.vocab) == len(vocab) and (len(dls.train), len(dls.valid)) == (len(legacy.train), len(legacy.valid))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(dls.valid, LMDataLoader(dsets.valid, bs=bs, seq_len=sl)))

    # 6. the notebook's hand-written training loop
    torch.manual_seed(0); torch.set_num_threads(1)
    config = dict(awd_lstm_lm_config, emb_sz=16, n_hid=16, n_layers=1)
    model = get_language_model(AWD_LSTM, len(dls.vocab), config=config).to(default_device())
    opt, loss_func = Adam(model.parameters(), lr=5e-3, wd=0.1), CrossEntropyLossFlat()
    losses = []
    for epoch in range(2):
        model.train()
        for x, y in legacy.train:
            x, y = x.to(default_device()), y.to(default_device())
            opt.zero_grad()
            out = model(x)[0]
            loss = loss_func(out.view(-1, out.shape[-1]), y.view(-1))
            loss.backward(); opt.step()
        model.eval()
        with torch.no_grad():
            losses.append(np.mean([loss_func(model(x)[0].view(-1, len(vocab)), y.view(-1)).item() for x, y in legacy.valid]))
    assert max(losses) < np.log(len(vocab))     # it learnt something: better than a uniform guess
    assert legacy.train.epoch == 2

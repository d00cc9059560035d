"""State safety, property-based: windows and sub-windows come in order, resets happen exactly at window starts, and the
state never crosses a window (training, validation, get_preds, predict_sequence), for every model family.

Records encode their own time index and record number in their values (y[t] = 1000*record + t, in physical units, so a
batch decodes exactly), which makes every order, continuity and coverage property checkable sample by sample."""
import warnings
from functools import partial
import numpy as np
import pytest
import torch
from hypothesis import given, example, settings, assume, strategies as st, HealthCheck
from fastai.basics import set_seed
from fastai.callback.core import Callback
from fastai.optimizer import OptimWrapper
from tsfast_lite.data.records import Record
from tsfast_lite.data.loaders import create_dls, divisors, WindowDL
from tsfast_lite.learner.core import seq_learner
from test_families import FAMILIES
import tsfast_lite.inference  # predict_sequence

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings('ignore:.*shorter than win_sz.*:UserWarning'),
              pytest.mark.filterwarnings('ignore:.*are constant in the training records.*:UserWarning')]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def index_records(lengths, first=0):
    "Records whose y is 1000*record number + time index, u a different but exact function of the same"
    return [Record({'u': np.sin(np.arange(n) * 0.7 + k), 'y': 1000.*k + np.arange(n)}, fs=1., name=f'r{k}')
            for k, n in enumerate(lengths, start=first)]

def n_windows(lengths, win_sz, stp_sz):
    "The number of windows, by the formula"
    return sum((n - win_sz)//stp_sz + 1 for n in lengths if n >= win_sz)

def all_windows(lengths, win_sz, stp_sz, first=0):
    "(record, start) of every window, in record order"
    return [(k, s) for k, n in enumerate(lengths, start=first) if n >= win_sz for s in range(0, n - win_sz + 1, stp_sz)]

@st.composite
def configs(draw, max_len=60):
    win_sz = draw(st.integers(2, 24))
    sub_seq_len = draw(st.sampled_from(divisors(win_sz)))
    stp_sz = draw(st.integers(1, win_sz + 3))
    train = draw(st.lists(st.integers(1, max_len), min_size=1, max_size=3))
    train[0] = max(train[0], win_sz)  # at least one training window
    valid = draw(st.lists(st.integers(1, max_len), min_size=1, max_size=3))
    valid[-1] = max(valid[-1], win_sz)
    valid_stp_sz = draw(st.none() | st.integers(1, win_sz + 3))
    bs = draw(st.integers(1, n_windows(train, win_sz, stp_sz)))
    valid_bs = draw(st.integers(1, 6))
    n_batches = draw(st.none() | st.integers(1, 4))
    return dict(win_sz=win_sz, sub_seq_len=sub_seq_len, stp_sz=stp_sz, train=train, valid=valid,
                valid_stp_sz=valid_stp_sz, bs=bs, valid_bs=valid_bs, n_batches_train=n_batches)

def make_dls(c, num_workers=0):
    ds = {'train': index_records(c['train']), 'valid': index_records(c['valid'], first=len(c['train']))}
    return create_dls('u', 'y', ds, win_sz=c['win_sz'], stp_sz=c['stp_sz'], sub_seq_len=c['sub_seq_len'], bs=c['bs'],
                      valid_stp_sz=c['valid_stp_sz'], valid_bs=c['valid_bs'], n_batches_train=c['n_batches_train'],
                      num_workers=num_workers, device='cpu')

def walk(dl):
    "Iterate over `dl`: per sub-batch (window_start, sub_idx, decoded y [bs, L]); and the glued windows [(rec, start)]"
    subs, windows, cur = [], [], None
    for u, y in dl:
        v = y[..., 0].numpy().astype(np.int64)
        subs.append((dl.window_start, dl.sub_idx, v))
        if dl.window_start:
            if cur is not None: windows.append(cur)
            cur = [v]
        else: cur.append(v)
    if cur is not None: windows.append(cur)
    return subs, [np.concatenate(w, 1) for w in windows]

def check_loader(dl, lengths, first):
    "Order, continuity and reset properties of one epoch of `dl`; returns the (record, start) of its windows in order"
    subs, batches = walk(dl)
    n_sub = dl.win_sz // dl.sub_seq_len
    assert len(subs) == len(dl) == dl.n_window_batches() * n_sub
    # resets exactly at window starts: the flag is set on the first sub-window of every window-batch, and only there
    assert [s[0] for s in subs] == [True, *[False]*(n_sub - 1)] * dl.n_window_batches()
    assert [s[1] for s in subs] == list(range(n_sub)) * dl.n_window_batches()
    # every sub-window continues its predecessor, row by row (same record, next sample)
    for (f0, _, a), (f1, _, b) in zip(subs, subs[1:]):
        if not f1: assert a.shape[0] == b.shape[0] and (b[:, 0] == a[:, -1] + 1).all()
    seen = []
    for w in batches:
        assert w.shape[1] == dl.win_sz
        rec, t = w // 1000, w % 1000
        assert (rec == rec[:, :1]).all() and (np.diff(t, axis=1) == 1).all()  # one record, consecutive samples
        for r, s in zip(rec[:, 0], t[:, 0]):
            assert s % dl.windows.stp_sz == 0 and s + dl.win_sz <= lengths[r - first]  # a valid window start
            seen.append((int(r), int(s)))
    return seen

@FAST
@given(configs())
def test_windows_in_order_train_and_valid(c):
    dls = make_dls(c)
    expected = all_windows(c['train'], c['win_sz'], c['stp_sz'])
    assert len(dls.train.windows) == len(expected) == n_windows(c['train'], c['win_sz'], c['stp_sz'])
    torch.manual_seed(0)
    seen = check_loader(dls.train, c['train'], 0)
    assert set(seen) <= set(expected)
    if c['n_batches_train'] is None:  # each window at most once; only the last incomplete batch is dropped
        assert len(seen) == len(set(seen)) == len(expected) // c['bs'] * c['bs']
    else:  # shuffled rounds: every window once before any window twice
        assert len(seen) == c['n_batches_train'] * c['bs']
        first_round = seen[:len(expected)]
        assert len(set(first_round)) == len(first_round)
    vstp = c['valid_stp_sz'] or c['win_sz']
    vexp = all_windows(c['valid'], c['win_sz'], vstp, first=len(c['train']))
    assert check_loader(dls.valid, c['valid'], len(c['train'])) == vexp  # all of them, in record and time order
    assert len(dls.valid.windows) == n_windows(c['valid'], c['win_sz'], vstp)

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(max_len=40))
def test_two_workers_give_the_order_of_zero(c):
    d0, d2 = make_dls(c), make_dls(c, num_workers=2)
    for dl0, dl2 in ((d0.train, d2.train), (d0.valid, d2.valid)):
        torch.manual_seed(3); a, _ = walk(dl0)
        torch.manual_seed(3); b, _ = walk(dl2)
        assert len(a) == len(b)
        for (fa, ia, va), (fb, ib, vb) in zip(a, b): assert (fa, ia) == (fb, ib) and np.array_equal(va, vb)

class StateProbe(Callback):
    "After TbpttResetCB: record, per batch, the flags and state it hands to the model, and the scored predictions"
    order = -5
    def before_fit(self): self.rows = []
    def before_validate(self): self.rows = getattr(self, 'rows', [])
    def before_batch(self):
        cb = self.learn.tbptt_reset_cb
        self.cur = dict(training=self.training, start=self.learn.dl.window_start, sub_idx=self.learn.dl.sub_idx,
                        u_full=cb._u.clone(),
                        xb_state_none=self.learn.xb[1] is None, carried_none=cb.state is None)
    def after_pred(self):
        self.cur['pred'] = self.learn.pred.detach().clone()
        self.rows.append(self.cur)

def glue(rows):
    "Group probe rows into windows: [(u [bs, win_sz, n_u] of the window, scored preds [bs, ..., n_y])]"
    out = []
    for r in rows:
        if r['start']: out.append(([r['u_full']], [r['pred']]))
        else: out[-1][0].append(r['u_full']); out[-1][1].append(r['pred'])
    return [(torch.cat(u, 1), torch.cat(p, 1)) for u, p in out]

PROPERTY_FAMILIES = ['gru', 'lstm2', 'tcn', 'lru', 'linear_ss_gru', 'neural_ss']  # every family, RNN included

@st.composite
def learner_configs(draw):
    c = draw(configs(max_len=40))
    c['k2'] = draw(st.sampled_from([None, 'k1', 'less', 'more']))
    c['n_skip'] = draw(st.integers(0, c['sub_seq_len'] - 1))
    c['family'] = draw(st.sampled_from(PROPERTY_FAMILIES))
    return c

def make_learner(c):
    dls = make_dls(c)
    k1 = c['sub_seq_len']
    k2 = dict(k1=k1, less=max(1, k1 // 2), more=k1 + 3).get(c['k2'])
    set_seed(1)
    probe = StateProbe()
    learn = seq_learner(dls, FAMILIES[c['family']](1, 1), n_skip=c['n_skip'], k2=k2, cbs=probe,
                        opt_func=partial(OptimWrapper, opt=torch.optim.SGD))
    return learn, probe, k2

def reference(learn, u):
    """The model's prediction of whole windows `u` from the zero state (compared to 1e-4: the parallel scans of the LRU and
    the linear state-space model sum in a different order over a sub-window than over a whole window)"""
    with torch.no_grad(): return learn.model(u)[0]

@SLOW
@given(learner_configs())
def test_state_never_crosses_windows(c):
    learn, probe, k2 = make_learner(c)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=0.)  # lr 0: the weights stay, so predictions can be replayed
    rows = probe.rows
    train, valid = [r for r in rows if r['training']], [r for r in rows if not r['training']]
    assert len(train) == len(learn.dls.train) and len(valid) == len(learn.dls.valid)
    for r in rows:
        # the carried state is None exactly at window starts, in training and in validation
        assert r['carried_none'] == r['start']
        k1 = c['sub_seq_len']
        if r['training'] and k2 is not None and k2 < k1:
            assert not r['xb_state_none']  # the model gets the state advanced over the unscored first k1-k2 steps
        elif r['training'] and k2 is not None and k2 > k1:  # the overlap is recomputed from the state k2 steps back:
            assert r['xb_state_none'] == (r['sub_idx'] * k1 <= k2 - k1)  # the zero state while that is the start
        else: assert r['xb_state_none'] == r['start']  # the model gets the zero state exactly at window starts
    # the values: every window's predictions equal a forward pass over the whole window from the zero state (no state
    # leaks in at the start, none is lost in the middle); training with k2 < k1 scores only the last k2 steps
    for group, scored_all in ((train, k2 is None or k2 >= c['sub_seq_len']), (valid, True)):
        for u, pred in glue(group):
            ref = reference(learn, u)
            tol = 1e-4 * max(1., float(ref.abs().max()))  # float32 rounding grows with the outputs' size
            if scored_all: torch.testing.assert_close(pred, ref[:, c['n_skip']:], atol=tol, rtol=1e-4)
            else:
                L = c['sub_seq_len']
                first = max(c['n_skip'], L - k2)
                parts = [ref[:, first:L]] + [ref[:, e - k2:e] for e in range(2*L, u.shape[1] + 1, L)]
                torch.testing.assert_close(pred, torch.cat(parts, 1), atol=tol, rtol=1e-4)
    # get_preds: whole windows, each from the zero state, the last (smaller) batch included
    u, p, y = learn.get_preds(with_input=True)
    assert len(p) == len(learn.dls.valid.windows)
    ref = reference(learn, u)
    torch.testing.assert_close(p, ref[:, c['n_skip']:], atol=1e-4 * max(1., float(ref.abs().max())), rtol=1e-4)
    assert learn.tbptt_reset_cb.state is None  # dropped after fit and after get_preds

@SLOW
@given(learner_configs(), st.integers(1, 50), st.integers(1, 80), st.integers(1, 80))
@example(c={'win_sz': 2, 'sub_seq_len': 1, 'stp_sz': 1, 'train': [31, 10, 1], 'valid': [2], 'valid_stp_sz': None,
            'bs': 1, 'valid_bs': 1, 'n_batches_train': None, 'k2': None, 'n_skip': 0, 'family': 'linear_ss_gru'},
         chunk_sz=1, n1=77, n2=53)  # outputs of up to 600: an absolute 1e-4 was below float32 rounding there
def test_predict_sequence_starts_from_zero_state(c, chunk_sz, n1, n2):
    learn, _, _ = make_learner(c)
    rng = np.random.default_rng(n1 + 100*n2)
    u1, u2 = rng.standard_normal((n1, 1)), rng.standard_normal((n2, 1))
    def whole(u):
        x = learn.model.normalize_u(torch.tensor(u, dtype=torch.float32))[None]
        return reference(learn, x)[0].numpy()
    a = learn.predict_sequence(u1, chunk_sz=chunk_sz)
    b = learn.predict_sequence(u2, chunk_sz=chunk_sz)  # after another sequence: nothing carried over
    for got, u in ((a, u1), (b, u2)):
        ref = whole(u)
        # float32 rounding grows with the outputs' size (a linear state space can reach hundreds): 1e-4 of their scale
        np.testing.assert_allclose(got, ref, atol=1e-4 * max(1., float(np.abs(ref).max())), rtol=1e-4)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr=0.)  # training in between leaves no state behind
    np.testing.assert_array_equal(learn.predict_sequence(u2, chunk_sz=chunk_sz), b)

class CraftedDL(WindowDL):
    "A loader yielding given (u, y, window_start) sub-batches, to make the batch size change where it should not"
    def __init__(self, base, items): self.__dict__.update(base.__dict__); self.items = items
    def __len__(self): return len(self.items)
    def __iter__(self):
        for i, (u, y, start) in enumerate(self.items):
            self.sub_idx = 0 if start else i
            yield u, y
        self.sub_idx = 0

def test_batch_size_change_inside_a_window_raises_and_at_a_window_start_resets():
    c = dict(win_sz=8, sub_seq_len=4, stp_sz=2, train=[40], valid=[40], valid_stp_sz=None, bs=4, valid_bs=4,
             n_batches_train=None, k2=None, n_skip=0, family='gru')
    learn, probe, _ = make_learner(c)
    u, y = learn.dls.valid.windows.get(list(range(4)))
    L = 4
    bad = CraftedDL(learn.dls.valid, [(u[:, :L], y[:, :L], True), (u[:3, L:], y[:3, L:], False)])
    with learn.no_bar(), pytest.raises(RuntimeError, match=r"The batch size changed from 4 to 3 inside a window "
                                                            r"\(sub-window 1\): the carried state would be lost"):
        learn.validate(dl=bad)
    # the same change at a window start (the last, smaller batch of a loader) starts from the zero state
    ok = CraftedDL(learn.dls.valid, [(u[:, :L], y[:, :L], True), (u[:, L:], y[:, L:], False),
                                     (u[:3, :L], y[:3, :L], True), (u[:3, L:], y[:3, L:], False)])
    probe.rows = []
    with learn.no_bar(): learn.validate(dl=ok)
    assert [r['carried_none'] for r in probe.rows] == [True, False, True, False]
    ref = reference(learn, u)
    torch.testing.assert_close(torch.cat([probe.rows[2]['pred'], probe.rows[3]['pred']], 1), ref[:3])

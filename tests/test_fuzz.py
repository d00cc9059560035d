"""Property-based fuzz of the public entry points: random shapes, dtypes, NaN/inf, empty and tiny records, numpy
scalars and wrong types. Every call either gives a result that is right, or raises a ValueError/TypeError whose message
names the argument it refuses, never a bare numpy, torch or h5py exception from deep inside. Bounded to well under a
minute on 2 cores (`settings` below; FUZZ_N=600 in the environment runs ten times as many examples)."""
import os, warnings
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
from fastai.basics import set_seed
from tsfast_lite.data.records import Record, NormStats
from tsfast_lite.data.loaders import create_dls
from tsfast_lite.learner.core import RNNLearner
from tsfast_lite.test_utils import lowpass_records
import tsfast_lite.inference  # predict_sequence

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings('ignore::UserWarning')]
N = int(os.environ.get('FUZZ_N', 60))   # examples per property (the fits: two thirds of it)
FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

def refused(f, *names):
    "Run `f`; if it raises, the error must be a ValueError/TypeError (or KeyError for a name) naming one of `names`"
    try: return f()
    except (ValueError, TypeError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        assert any(n in msg for n in names), f"{type(e).__name__} does not name any of {names}: {msg}"
        assert type(e).__module__ == 'builtins', type(e)
        return e

# --------------------------------------------------------------------------------------------------- values
numbers = st.one_of(st.integers(-5, 400), st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.integers(-5, 400).map(np.int64), st.floats(-1e3, 1e3).map(np.float32), st.booleans(),
                    st.none(), st.text(max_size=3), st.just([3]), st.just(np.array([20])))

dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128, object, str])
shapes = st.one_of(st.tuples(st.integers(0, 6)), st.tuples(st.integers(0, 6), st.integers(0, 2)),
                   st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2)), st.just(()))

@st.composite
def signals(draw):
    "An array of a random shape and dtype, with NaN or inf sometimes, or a list, a numpy scalar, None, a string"
    kind = draw(st.sampled_from(['array', 'array', 'array', 'list', 'scalar', 'none', 'text']))
    if kind == 'none': return None
    if kind == 'text': return draw(st.text(max_size=4))
    if kind == 'scalar': return draw(st.sampled_from([np.float64(1.5), np.int32(3), 2.0, True]))
    shape, dt = draw(shapes), draw(dtypes)
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    if a.size and draw(st.booleans()): a.reshape(-1)[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    a = a.astype(dt) if dt not in (object, str) else a.astype(dt)
    return a.tolist() if kind == 'list' else a

@FUZZ
@given(u=signals(), y=signals())
def test_record_fuzz(u, y):
    "A Record is made of finite real 1-D signals of equal length, or it is refused naming the record and the signal"
    r = refused(lambda: Record({'u': u, 'y': y}, name='fz'), "Record 'fz'")
    if isinstance(r, Exception): return
    for k in ('u', 'y'):
        s = r.signals[k]
        assert s.dtype == np.float64 and s.ndim == 1 and len(s) == len(r) > 0 and np.isfinite(s).all(), (k, s)

# --------------------------------------------------------------------------------------------------- DataLoaders
DS = {'train': lowpass_records([120, 90]), 'valid': lowpass_records([60], seed=1), 'test': lowpass_records([50], seed=2)}
DLS_ARGS = ('win_sz', 'stp_sz', 'bs', 'sub_seq_len', 'valid_bs', 'n_batches_train', 'n_init', 'valid_frac', 'num_workers')

@FUZZ
@given(args=st.dictionaries(st.sampled_from(DLS_ARGS), numbers, max_size=3), win=st.one_of(st.integers(1, 70), numbers))
def test_create_dls_fuzz(args, win):
    "create_dls gives loaders whose windows have the asked length and batch size, or refuses an argument by name"
    kw = dict(args, win_sz=win)
    dls = refused(lambda: create_dls('u', 'y', DS, device='cpu', **kw), *kw, 'records', 'window')
    if isinstance(dls, Exception): return
    u, y = next(iter(dls.train))
    assert u.shape[-1] == 1 and y.shape[-1] == 1 and torch.isfinite(u).all() and torch.isfinite(y).all()
    assert u.shape[1] == (dls.sub_seq_len or dls.win_sz), (u.shape, dls.sub_seq_len, dls.win_sz)

# --------------------------------------------------------------------------------------------------- fit
_dls = create_dls('u', 'y', {k: DS[k] for k in ('train', 'valid')}, win_sz=20, stp_sz=20, bs=4, device='cpu', n_batches_train=2)
FIT_ARGS = {'fit': ('n_epoch', 'lr', 'wd'), 'fit_flat_cos': ('n_epoch', 'lr', 'wd', 'pct_start', 'div_final'),
            'fit_one_cycle': ('n_epoch', 'lr_max', 'wd', 'pct_start', 'div', 'div_final')}
# the arguments' validation is under test, not training at absurd rates: finite floats beyond 10 or below 1e-6 (an lr
# of 1e35, or lr / div with div = 1e-164, diverges; a last update can then leave infinite weights) are not drawn
fit_numbers = numbers.filter(lambda v: not (isinstance(v, (float, np.floating)) and np.isfinite(v) and (abs(v) > 10 or 0 < abs(v) < 1e-6)))
lrs = st.one_of(fit_numbers, st.floats(1e-5, 1e-1), st.just(slice(-1e-3, 1e-2)), st.just(slice(1e-4, 1e-2)), st.just([1e-3, -1.]))

@settings(max_examples=max(2 * N // 3, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fit=st.sampled_from(list(FIT_ARGS)), data=st.data())
def test_fit_fuzz(fit, data):
    "A fit trains with finite weights on valid numbers, or refuses the one it cannot use before any update"
    names = FIT_ARGS[fit]
    kw = {n: data.draw(lrs if n.startswith('lr') else st.one_of(fit_numbers, st.just(0.), st.floats(1e-6, 1)), label=n)
          for n in data.draw(st.lists(st.sampled_from(names), unique=True, max_size=2), label='args')}
    kw.setdefault('n_epoch', 1)
    if isinstance(kw['n_epoch'], (int, np.integer)) and not isinstance(kw['n_epoch'], bool) and kw['n_epoch'] > 2: kw['n_epoch'] = 2
    set_seed(0); learn = RNNLearner(_dls, 'gru', hidden_size=3)
    w0 = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: res = refused(lambda: getattr(learn, fit)(**kw), *kw)
        except FloatingPointError as e:   # the library's own stop (a rate that diverges): its message says what it left
            overflowed = 'weights are already non-finite' in str(e) or str(e).startswith('Non-finite weights after')
            assert overflowed or 'Non-finite training loss' in str(e), e
            finite = all(bool(torch.isfinite(v).all()) for v in learn.model.state_dict().values())
            assert finite != overflowed, (e, finite)  # finite weights kept, or non-finite ones named as such
            return
    if isinstance(res, Exception):
        for k, v in learn.model.state_dict().items(): assert torch.equal(v, w0[k]), f"{k} changed before {res}"
    else:
        for v in learn.model.state_dict().values(): assert torch.isfinite(v).all()
        assert usable(kw), f"{fit}({kw}) trained: it should have refused"

def _num(v): return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and np.isfinite(v)

def usable(kw) -> bool:
    "What a fit may accept: n_epoch a whole number >= 1, learning rates finite and >= 0, wd >= 0, div > 0, 0 <= pct_start <= 1"
    for k, v in kw.items():
        if k == 'n_epoch' and not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1): return False
        if k.startswith('lr') and v is not None:
            vals = [x for x in (v.start, v.stop) if x is not None] if isinstance(v, slice) else list(np.ravel(np.asarray(v, dtype=object)))
            if not all(_num(x) and x >= 0 for x in vals): return False
        if k == 'wd' and v is not None and not (_num(v) and v >= 0): return False
        if k in ('div', 'div_final') and not (_num(v) and v > 0): return False
        if k == 'pct_start' and not (_num(v) and 0 <= v <= 1): return False
    return True

# --------------------------------------------------------------------------------------------------- inference
_learn = RNNLearner(_dls, 'gru', hidden_size=3)

@FUZZ
@given(u=signals())
def test_predict_sequence_fuzz(u):
    "predict_sequence simulates [T, n_u] inputs to [T, n_y] outputs, or refuses its input by name"
    out = refused(lambda: _learn.predict_sequence(u), 'u', 'input')
    if isinstance(out, Exception): return
    a = np.asarray(u, dtype=np.float64)
    assert out.shape == (a.shape[0], 1) and np.isfinite(out).all(), (np.shape(u), out.shape)

@FUZZ
@given(mean=signals(), std=signals())
def test_normstats_fuzz(mean, std):
    "NormStats holds one finite mean and positive std per signal, or refuses them by name"
    n = refused(lambda: NormStats(mean, std, ['u']), 'mean', 'std', 'NormStats')
    if isinstance(n, Exception): return
    assert np.isfinite(n.mean).all() and (np.asarray(n.std) > 0).all() and len(n.mean) == 1

# --------------------------------------------------------------------------------------------------- newer surfaces
from tsfast_lite.models.linear_ss import fit_bla, check_ss, simulate_ss
from tsfast_lite.models.blocks import split_bla, block_bla
from tsfast_lite.learner.families import LinearSSLearner, NonlinearSSLearner, LRULearner, TCNLearner, BlockLearner

_FAMILIES = {'linear_ss': (LinearSSLearner, dict(nx=2)), 'nonlinear_ss': (NonlinearSSLearner, dict(nx=2)),
             'lru': (LRULearner, dict(hidden_size=4, state_size=2)), 'tcn': (TCNLearner, dict(hidden_size=4, num_layers=1, n_skip=2)),
             'blocks': (BlockLearner, dict(structure='wiener', nx=2)), 'rnn': (RNNLearner, dict(hidden_size=3))}
FAMILY_ARGS = {'linear_ss': ('nx', 'residual', 'hidden_size', 'integrators', 'n_skip'), 'nonlinear_ss': ('nx', 'f', 'h', 'degree', 'hidden_size', 'integrators'),
               'lru': ('hidden_size', 'state_size', 'num_layers', 'n_skip'), 'tcn': ('hidden_size', 'num_layers', 'kernel_size', 'n_skip'),
               'blocks': ('structure', 'nx', 'branches', 'hidden_size', 'nx1'), 'rnn': ('hidden_size', 'num_layers', 'rnn_type', 'n_skip')}
_learners = {}

def _family(name):
    if name not in _learners:
        cls, kw = _FAMILIES[name]
        set_seed(0); _learners[name] = cls(_dls, **kw)
    return _learners[name]

@settings(max_examples=max(N // 2, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(list(_FAMILIES)), data=st.data())
def test_family_args_fuzz(family, data):
    "Every family's learner builds from valid values, or refuses a bad one naming the argument"
    cls, base = _FAMILIES[family]
    k = data.draw(st.sampled_from(FAMILY_ARGS[family]))
    v = data.draw(st.one_of(numbers, st.sampled_from(['mlp', 'gru', 'poly', 'wh', 'hammerstein', 'lstm', 'x'])))
    l = refused(lambda: cls(_dls, **{**base, k: v}), k, 'encoder', 'nx', 'n_skip', 'receptive field', 'branches', 'bla', 'structure')
    if isinstance(l, Exception): return
    p = l.predict_sequence(np.zeros((30, 1)))
    assert p.shape == (30, 1) and np.isfinite(p).all()

_RNG = np.random.default_rng(0)
_U = _RNG.standard_normal((600, 1)); _Y = np.convolve(_U[:, 0], [0, .5, .3, .1])[:600, None]

@FUZZ
@given(nx=st.one_of(st.integers(1, 6), numbers), fb=st.booleans(), integ=st.one_of(st.integers(0, 2), numbers))
def test_fit_bla_fuzz(nx, fb, integ):
    "fit_bla gives a stable (A, B, C, D) that check_ss accepts, or refuses its argument by name"
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        bla = refused(lambda: fit_bla([_U], [_Y], nx=nx, feedthrough=fb, integrators=integ), 'nx', 'integrators', 'n_block', 'records')
    if isinstance(bla, Exception): return
    A, B, C, D = check_ss(bla)
    assert np.abs(np.linalg.eigvals(A)).max() <= 1 + 1e-9 and (fb or not D.any())

@FUZZ
@given(which=st.sampled_from(['A', 'B', 'C', 'D']), bad=signals(), fn=st.sampled_from(['split', 'block', 'block_wiener']),
       n=st.integers(2, 5), proper=st.booleans())
def test_bla_builders_fuzz(which, bad, fn, n, proper):
    "split_bla / block_bla take any single-input single-output system: the series of the blocks is the system, or a named refusal"
    rng = np.random.default_rng(n)
    A = np.diag(rng.uniform(-.9, .9, n)); B = rng.standard_normal((n, 1)); C = rng.standard_normal((1, n)); D = np.zeros((1, 1)) if proper else np.ones((1, 1))
    sys_ = dict(A=A, B=B, C=C, D=D)
    if bad is not None and which == 'A' and np.shape(bad) == (): sys_[which] = bad     # sometimes a wrong part
    call = {'split': lambda: split_bla(tuple(sys_.values())), 'block': lambda: block_bla(tuple(sys_.values())),
            'block_wiener': lambda: block_bla(tuple(sys_.values()), 'wiener')}[fn]
    out = refused(call, 'bla', 'split', 'nx1')
    if isinstance(out, Exception): return
    u = rng.standard_normal((80, 1))
    ref = simulate_ss(*check_ss(tuple(sys_.values())), u)
    if fn == 'split': got = simulate_ss(*out[1], simulate_ss(*out[0], u))
    else:
        g1, g2, W = out
        v = simulate_ss(*g1, u) if g1 is not None else u
        got = simulate_ss(*g2, v @ W.T) if g2 is not None else (v @ W.T)[:, :1]
    assert np.allclose(got, ref, atol=1e-8 * max(1, np.abs(ref).max())), fn

@FUZZ
@given(family=st.sampled_from(list(_FAMILIES)), kind=st.sampled_from(['own', 'float64', 'batch', 'extra', 'list', 'numpy', 'short']))
def test_state_fuzz(family, kind):
    "predict_sequence(state=...) takes the family's own state, or refuses another one naming the state and what the family carries"
    l = _family(family)
    with torch.no_grad(): st_ = l.estimate_state(np.zeros((20, 1)), np.zeros((20, 1))) if family != 'tcn' else l.model(torch.zeros(1, 3, 1))[1]
    st_ = st_.detach() if isinstance(st_, torch.Tensor) else tuple(t.detach() for t in st_)
    ts = [st_] if isinstance(st_, torch.Tensor) else list(st_)
    pack = lambda xs: xs[0] if isinstance(st_, torch.Tensor) and len(xs) == 1 else tuple(xs)
    given_ = {'own': st_, 'float64': pack([t.double() for t in ts]), 'batch': pack([t.expand(2, *t.shape[1:]) for t in ts]),
              'extra': tuple(ts) + (ts[0],), 'list': [t for t in ts], 'numpy': ts[0].numpy(), 'short': pack([t[..., :1] for t in ts])}[kind]
    out = refused(lambda: l.predict_sequence(np.zeros((25, 1)), state=given_), 'state')
    if kind == 'own': assert not isinstance(out, Exception) and out.shape == (25, 1)
    elif not isinstance(out, Exception): assert kind == 'short' and all(t.shape[-1] == 1 for t in ts)  # a no-op cut
    else: assert type(_learners[family].model.model).__name__ in str(out) or kind in ('list', 'numpy'), str(out)

@FUZZ
@given(u=signals(), y=signals(), n_init=st.one_of(st.integers(0, 60), numbers), init=st.sampled_from(['zero', 'estimate', None, 'x']))
def test_evaluate_tests_fuzz(u, y, n_init, init):
    "evaluate_tests scores [T, n_u], [T, n_y] test sets per output, or refuses them naming the test set or argument"
    r = refused(lambda: _learn.evaluate_tests({'t': (u, y)}, n_init=n_init, init=init, plot=False), "Test set 't'", 'n_init', 'init', 'u ', 'u is', 'u has', 'y ')
    if isinstance(r, Exception): return
    assert list(r.index) == ['t'] and np.isfinite(r['rmse']).all() and (r['rmse'] >= 0).all()

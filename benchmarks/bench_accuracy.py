"""Train documented recipes on the official benchmarks and score them on the official test sets.

Each (recipe, seed) run trains with `fit_flat_cos`, scores every official test set with `evaluate_tests()` (free-run
simulation from the zero state, scored on y[n_init:]) and appends one JSON line to `<out>.jsonl`, so a long run that is
stopped keeps what finished. The markdown table (mean and spread over seeds, training time, published numbers beside
ours) is rebuilt from that file after every run and at the end.

    python benchmarks/bench_accuracy.py --quick                       # smoke run: every recipe, a few updates
    python benchmarks/bench_accuracy.py --recipes sb_gru_w2 --seeds 3 # three seeds of one recipe
    python benchmarks/bench_accuracy.py --table-only                  # rebuild the table from the .jsonl
    python benchmarks/bench_accuracy.py --predictions --recipes sb_tcn sb_lru sb_linear_ss sb_lstm_tbptt_5000_e25

The last line runs one recipe per model family (FAMILY_RECIPES, ENCODER_RECIPES: the "Choosing a model" guide page);
`--predictions` keeps part of each Silverbox run's simulation of arrow_full in results/predictions/ for its figure.

Data: TSFAST_LITE_DATA must point at the benchmark files (or they are downloaded into the cache).
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # torch and fastai are imported where they are used: pages that read the results need neither

# Published simulation RMSE on the official test sets, in the benchmark's unit (see benchmarks/README.md for sources).
PUBLISHED = {
    'silverbox': {
        'tsfast GRU default recipe (W2, 10 epochs)': {'multisine': 0.325, 'arrow_full': 1.43, 'arrow_no_extrapolation': 0.312},
        'SUBNET': {'multisine': 0.36, 'arrow_full': 1.4, 'arrow_no_extrapolation': 0.32},
        'GP-NARX': {'multisine': 0.301, 'arrow_full': 0.60, 'arrow_no_extrapolation': 0.259},
        'PNLSS': {'arrow_full': 0.26},
    },
    'wiener_hammerstein': {'SUBNET': {'test': 0.241}, 'tsfast GRU': {'test': 0.580}},
    'cascaded_tanks': {'grey-box': {'test': 0.191}, 'best black-box': {'test': 0.306}},
}
TEST_ORDER = {'silverbox': ['multisine', 'arrow_full', 'arrow_no_extrapolation'], 'wiener_hammerstein': ['test'],
              'cascaded_tanks': ['test']}
TITLES = {'silverbox': 'Silverbox [mV]', 'wiener_hammerstein': 'Wiener-Hammerstein [mV]', 'cascaded_tanks': 'Cascaded Tanks [V]'}

# The recipes. `dls`: arguments of the benchmark's create_dls_*; `family`: a key of LEARNERS; `learner`: arguments of
# that family's learner (RNNLearner, TCNLearner, ...); `fit`: epochs, lr.
def _recipe(benchmark, doc, dls, n_epoch, lr=3e-3, family='rnn', **learner):
    return dict(benchmark=benchmark, doc=doc, dls=dls, family=family, learner=learner, fit=dict(n_epoch=n_epoch, lr=lr))

W2 = dict(bs=64, win_sz=200, stp_sz=1, n_batches_train=300)  # tsfast's default recipe, W2 in the performance issue
TBPTT_5000 = dict(bs=16, win_sz=5000, stp_sz=10, sub_seq_len=250, n_batches_train=40)

def _w2(benchmark, doc, head_gain, lr=3e-3, **kw):
    return _recipe(benchmark, doc, W2, 10, lr, rnn_type='gru', hidden_size=100, n_skip=50, head_gain=head_gain, **kw)

def _tutorial(doc, sub_seq_len, head_gain):
    dls = dict(bs=16, win_sz=500, stp_sz=10, **({} if sub_seq_len is None else dict(sub_seq_len=sub_seq_len)))
    return _recipe('silverbox', doc, dls, 10, rnn_type='lstm', hidden_size=40, head_gain=head_gain)

def _ct(doc, head_gain):
    return _recipe('cascaded_tanks', doc, dict(bs=16, win_sz=100, stp_sz=1), 100, rnn_type='gru', hidden_size=32,
                   n_skip=5, head_gain=head_gain)

def _tbptt_5000(doc, n_epoch, hidden_size=64, benchmark='silverbox', head_gain=100.):
    return _recipe(benchmark, doc, TBPTT_5000, n_epoch, rnn_type='lstm', hidden_size=hidden_size, n_skip=50,
                   head_gain=head_gain)

RECIPES = {
    'sb_gru_w2': _w2('silverbox', "tsfast's GRU default recipe (W2) with head_gain=1 (a plain linear output layer): "
                     "GRU 100, bs 64, win_sz 200, stp_sz 1, 300 batches/epoch, n_skip 50, fit_flat_cos(10, 3e-3), full "
                     "BPTT on 200-sample windows", 1.),
    'sb_gru_w2_gain10': _w2('silverbox', "`sb_gru_w2` with head_gain=10 (the output layer learns 10 x faster under "
                            "Adam)", 10.),
    'sb_gru_w2_gain30': _w2('silverbox', "`sb_gru_w2` with head_gain=30, RNNLearner's default", 30.),
    'sb_gru_w2_gain100': _w2('silverbox', "`sb_gru_w2` with head_gain=100", 100.),
    'sb_gru_w2_gain30_mse': _w2('silverbox', "`sb_gru_w2_gain30` trained on the mean squared error instead of the mean "
                                "absolute error (RNNLearner's default)", 30., loss_func='mse'),
    'sb_gru_w2_gain100_mse': _w2('silverbox', "`sb_gru_w2_gain100` trained on the mean squared error", 100.,
                                 loss_func='mse'),
    'sb_gru_w2_gain30_lr1e-2': _w2('silverbox', "`sb_gru_w2_gain30` with lr 1e-2 instead of 3e-3", 30., 1e-2),
    'sb_tutorial_tbptt_gain1': _tutorial("the tutorial's TBPTT recipe: LSTM 40, bs 16, win_sz 500 cut into sub_seq_len "
                                         "100, stp_sz 10, all windows each epoch, fit_flat_cos(10, 3e-3), head_gain=1",
                                         100, 1.),
    'sb_tutorial_tbptt_gain30': _tutorial("`sb_tutorial_tbptt_gain1` with head_gain=30, RNNLearner's default", 100, 30.),
    'sb_tutorial_full_gain1': _tutorial("the tutorial's standard recipe: as `sb_tutorial_tbptt_gain1` with full BPTT on "
                                        "the 500-sample windows", None, 1.),
    'sb_tutorial_full_gain30': _tutorial("`sb_tutorial_full_gain1` with head_gain=30, RNNLearner's default", None, 30.),
    'sb_lstm_tbptt_5000_e25': _tbptt_5000(
        "very long windows with TBPTT: LSTM 64, head_gain 100, bs 16, win_sz 5000 cut into sub_seq_len 250 (20 "
        "updates per window, state carried), stp_sz 10, 40 window-batches/epoch, n_skip 50, fit_flat_cos(25, 3e-3) "
        "(1,000 window-batches, 20,000 updates)", 25),
    'sb_lstm_tbptt_5000_e50': _tbptt_5000("as `sb_lstm_tbptt_5000_e25`, 50 epochs (2,000 window-batches, 40,000 "
                                          "updates)", 50),
    'sb_lstm_tbptt_5000_e75': _tbptt_5000("as `sb_lstm_tbptt_5000_e25`, 75 epochs (3,000 window-batches, 60,000 "
                                          "updates)", 75),
    'sb_lstm100_tbptt_5000_e25': _tbptt_5000("as `sb_lstm_tbptt_5000_e25` with LSTM 100", 25, hidden_size=100),
    'sb_lstm100_tbptt_5000_e50': _tbptt_5000("as `sb_lstm_tbptt_5000_e50` with LSTM 100", 50, hidden_size=100),
    'wh_gru_w2': _w2('wiener_hammerstein', "W2 on Wiener-Hammerstein with head_gain=1: GRU 100, bs 64, win_sz 200, "
                     "stp_sz 1, 300 batches/epoch, n_skip 50, fit_flat_cos(10, 3e-3)", 1.),
    'wh_gru_w2_gain10': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=10", 10.),
    'wh_gru_w2_gain30': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=30, RNNLearner's default", 30.),
    'wh_gru_w2_gain100': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=100", 100.),
    'wh_lstm_tbptt_5000_e25': _tbptt_5000("`sb_lstm_tbptt_5000_e25` on Wiener-Hammerstein with head_gain=30", 25,
                                          benchmark='wiener_hammerstein', head_gain=30.),
    'wh_lstm_tbptt_5000_e75': _tbptt_5000("as `wh_lstm_tbptt_5000_e25`, 75 epochs", 75, benchmark='wiener_hammerstein',
                                          head_gain=30.),
    'wh_lstm_tbptt_5000_e25_lr1e-2': dict(_tbptt_5000("as `wh_lstm_tbptt_5000_e25` with lr 1e-2", 25,
                                                     benchmark='wiener_hammerstein', head_gain=30.), fit=dict(n_epoch=25, lr=1e-2)),
    'wh_lstm_tbptt_5000_e25_gain100': _tbptt_5000("as `wh_lstm_tbptt_5000_e25` with head_gain=100", 25,
                                                  benchmark='wiener_hammerstein', head_gain=100.),
    'ct_gru': _ct("Cascaded Tanks: GRU 32, head_gain 100, bs 16, win_sz 100, stp_sz 1, all windows each epoch, n_skip 5, "
                  "fit_flat_cos(100, 3e-3)", 100.),
    'ct_gru_gain1': _ct("`ct_gru` with head_gain=1", 1.),
    'ct_gru_gain30': _ct("`ct_gru` with head_gain=30, RNNLearner's default", 30.),
}

# One recipe per model family and benchmark, each about 4 minutes of training on one CPU thread (the "Choosing a
# model" guide page). The RNN row of each benchmark is an existing recipe: FAMILY_RECIPES[bench]['rnn'].
LONG_5000 = dict(bs=16, win_sz=5000, stp_sz=10, n_batches_train=20)  # 5000-sample windows, cut into sub-windows

def _tcn(benchmark, doc, dls, n_epoch, **kw):
    return _recipe(benchmark, doc, dls, n_epoch, family='tcn', **kw)

def _lru(benchmark, doc, dls, n_epoch, **kw):
    return _recipe(benchmark, doc, dls, n_epoch, family='lru', **kw)

_TCN_LONG = ("TCN 32 channels, 6 blocks (kernel 3, dilations 1..32, receptive field 253, n_skip 252 by default), "
             "head_gain 30, bs 16, win_sz 5000 cut into sub_seq_len 500, stp_sz 10, 20 window-batches/epoch, "
             "fit_flat_cos(12, 3e-3) (240 window-batches, 2,400 updates)")
_LRU_LONG = ("LRU 32 wide, 2 blocks of 32 complex states, head_gain 30, n_skip 50, bs 16, win_sz 5000 cut into "
             "sub_seq_len 250, stp_sz 10, 20 window-batches/epoch, fit_flat_cos(10, 3e-3) (200 window-batches, "
             "4,000 updates)")
_TCN_CT = ("TCN 32 channels, 4 blocks (receptive field 61, n_skip 60 by default), head_gain 30, bs 16, win_sz 200, "
           "stp_sz 1, all windows each epoch, fit_flat_cos(100, 3e-3)")
_LRU_CT = ("LRU 32 wide, 2 blocks of 32 complex states, head_gain 30, n_skip 5, bs 16, win_sz 200, stp_sz 1, all "
           "windows each epoch, fit_flat_cos(100, 3e-3)")
for _bm, _p in (('silverbox', 'sb'), ('wiener_hammerstein', 'wh')):
    RECIPES[f'{_p}_tcn'] = _tcn(_bm, _TCN_LONG, dict(LONG_5000, sub_seq_len=500), 12, hidden_size=32, num_layers=6)
    RECIPES[f'{_p}_lru'] = _lru(_bm, _LRU_LONG, dict(LONG_5000, sub_seq_len=250), 10, hidden_size=32, state_size=32,
                                num_layers=2, n_skip=50)
RECIPES['ct_tcn'] = _tcn('cascaded_tanks', _TCN_CT, dict(bs=16, win_sz=200, stp_sz=1), 100, hidden_size=32, num_layers=4)
RECIPES['ct_lru'] = _lru('cascaded_tanks', _LRU_CT, dict(bs=16, win_sz=200, stp_sz=1), 100, hidden_size=32,
                         state_size=32, num_layers=2, n_skip=5)

def _linear_ss(benchmark, doc, dls, n_epoch, **kw):
    return _recipe(benchmark, doc, dls, n_epoch, family='linear_ss', **kw)

_LSS_LONG = ("linear state space, nx 8, initialised at the best linear approximation, plus an MLP residual of 32 units "
             "(head_gain 30), n_skip 150, bs 16, win_sz 5000 cut into sub_seq_len 250, stp_sz 10, 20 "
             "window-batches/epoch, fit_flat_cos(50, 3e-3) (1,000 window-batches, 20,000 updates)")
_LSS_CT = ("linear state space, nx 8, initialised at the best linear approximation, plus an MLP residual of 32 units "
           "(head_gain 30), n_skip 5, bs 16, win_sz 200, stp_sz 1, all windows each epoch, fit_flat_cos(100, 3e-3)")
for _bm, _p in (('silverbox', 'sb'), ('wiener_hammerstein', 'wh')):
    RECIPES[f'{_p}_linear_ss'] = _linear_ss(_bm, _LSS_LONG, dict(LONG_5000, sub_seq_len=250), 50, nx=8, residual='mlp',
                                            n_skip=150)
RECIPES['ct_linear_ss'] = _linear_ss('cascaded_tanks', _LSS_CT, dict(bs=16, win_sz=200, stp_sz=1), 100, nx=8,
                                     residual='mlp', n_skip=5)

# The RNN recipes with a learned initial state (`encoder=True`: an MLP reads the benchmark's n_init samples of u and y)
for _name in ('sb_lstm_tbptt_5000_e25', 'wh_lstm_tbptt_5000_e25', 'ct_gru'):
    RECIPES[f'{_name}_enc'] = dict(RECIPES[_name], learner=dict(RECIPES[_name]['learner'], encoder=True),
                                   doc=f"`{_name}` with a learned initial state (`encoder=True`: an MLP of 2 x 64 tanh "
                                       "units reads the first n_init samples of u and y of every window)")

RECIPES['ct_gru_enc_w200'] = dict(RECIPES['ct_gru_enc'], dls=dict(bs=16, win_sz=200, stp_sz=1),
                                  doc="`ct_gru_enc` with win_sz 200 (the encoder reads 50 samples, the model simulates 150)")
RECIPES['ct_gru_enc_h64'] = dict(RECIPES['ct_gru_enc'], learner=dict(RECIPES['ct_gru_enc']['learner'], hidden_size=64),
                                 doc="`ct_gru_enc` with GRU 64")
RECIPES['ct_gru_enc_e300'] = dict(RECIPES['ct_gru_enc'], fit=dict(n_epoch=300, lr=3e-3), doc="`ct_gru_enc`, 300 epochs")

FAMILY_RECIPES = {
    'silverbox': {'rnn': 'sb_lstm_tbptt_5000_e25', 'tcn': 'sb_tcn', 'lru': 'sb_lru', 'linear_ss': 'sb_linear_ss'},
    'wiener_hammerstein': {'rnn': 'wh_lstm_tbptt_5000_e25', 'tcn': 'wh_tcn', 'lru': 'wh_lru', 'linear_ss': 'wh_linear_ss'},
    'cascaded_tanks': {'rnn': 'ct_gru', 'tcn': 'ct_tcn', 'lru': 'ct_lru', 'linear_ss': 'ct_linear_ss'},
}
ENCODER_RECIPES = {'silverbox': 'sb_lstm_tbptt_5000_e25_enc', 'wiener_hammerstein': 'wh_lstm_tbptt_5000_e25_enc',
                   'cascaded_tanks': 'ct_gru_enc'}
DEFAULT_RECIPES = ['sb_gru_w2_gain30', 'sb_gru_w2_gain100', 'sb_lstm_tbptt_5000_e75', 'wh_gru_w2_gain30',
                   'wh_lstm_tbptt_5000_e75', 'ct_gru_gain30']

# The reference implementation run here: tsfast 0.5.0 (`pip install tsfast`) with its own defaults (torch Adam, inputs
# standardised, outputs not, L1 loss), trained in a separate python (`--tsfast-python`) and scored like evaluate_tests.
TSFAST_RECIPES = {
    'tsfast_gru_w2': dict(
        benchmark='silverbox',
        doc="tsfast 0.5.0 itself, W2 with its defaults: `tsfast.training.RNNLearner(dls, n_skip=50)` (GRU 100, "
            "torch Adam, output not normalised), `create_dls(win_sz=200, stp_sz=1, bs=64, n_batches_train=300)` on "
            "the same train/valid records, fit_flat_cos(10, 3e-3)",
        fit=dict(n_epoch=10, lr=3e-3)),
}
ALL_RECIPES = {**RECIPES, **TSFAST_RECIPES}


def make_dls(recipe:dict, quick:bool):
    from tsfast_lite.data import benchmarks as B
    kw = dict(recipe['dls'])
    if quick: kw['n_batches_train'] = 2
    return getattr(B, f"create_dls_{recipe['benchmark']}")(**kw)


LOSSES = {'mse': 'MSELoss', 'l1': 'L1Loss'}  # recipes name their loss (a torch.nn class), so that rows stay JSON

# The model families: recipe['family'] -> (module, learner constructor), imported when a recipe of the family runs
LEARNERS = {'rnn': ('tsfast_lite.learner.core', 'RNNLearner'), 'tcn': ('tsfast_lite.models.tcn', 'TCNLearner'),
            'lru': ('tsfast_lite.models.lru', 'LRULearner'), 'linear_ss': ('tsfast_lite.models.linear_ss', 'LinearSSLearner')}

def make_learner(recipe:dict, dls):
    "The family's learner (RNNLearner by default) with the recipe's arguments (a `loss_func` given by name, see LOSSES)"
    import importlib
    module, fn = LEARNERS[recipe.get('family', 'rnn')]
    kw = dict(recipe['learner'])
    if 'loss_func' in kw:
        import torch
        kw['loss_func'] = getattr(torch.nn, LOSSES[kw['loss_func']])()
    return getattr(importlib.import_module(module), fn)(dls, **kw)


def _head_gain(model) -> float|None:
    "The gain of the model's output layer (the last `ScaledLinear`), None when it has none"
    from tsfast_lite.models.rnn import ScaledLinear
    return next((float(m.gain) for m in reversed(list(model.modules())) if isinstance(m, ScaledLinear)), None)


def epoch_times_cb():
    "A fastai callback recording the wall-clock and process CPU seconds of every epoch (training and validation)"
    from fastai.callback.core import Callback
    class EpochTimesCB(Callback):
        order = 100
        def __init__(self): self.wall, self.cpu = [], []
        def before_epoch(self): self._t = (time.perf_counter(), time.process_time())
        def after_epoch(self):
            self.wall.append(time.perf_counter() - self._t[0]); self.cpu.append(time.process_time() - self._t[1])
    return EpochTimesCB()


PREDICTIONS = ROOT/'benchmarks'/'results'/'predictions'
# What `--predictions` keeps of a Silverbox run's simulation of arrow_full (from the zero state; the record starts at
# rest): the measured and simulated output on ZOOM (the end of the record, where the amplitude exceeds the training
# data's), and over blocks of BLOCK samples of the whole record the RMS error and the largest measured |y|.
ZOOM, BLOCK = (39_000, 40_475), 250

def save_predictions(learn, name:str, seed:int, test:str='arrow_full'):
    "Keep a small part of the simulation of Silverbox test `test` (see ZOOM, BLOCK) in results/predictions/"
    u, y = learn.dls.test_sets[test]
    p = learn.predict_sequence(u)
    n_init, scale = learn.dls.n_init, learn.dls.score_scale
    e, y0 = (p - y)[:, 0] * scale, y[:, 0] * scale
    nb = (len(e) - n_init) // BLOCK
    blocks = lambda x: x[n_init:n_init + nb * BLOCK].reshape(nb, BLOCK)
    train_ymax = float(learn.dls.train.windows.y.abs().max()) * scale  # the training record's largest |y|
    PREDICTIONS.mkdir(parents=True, exist_ok=True)
    a, b = ZOOM
    np.savez_compressed(PREDICTIONS/f'{name}_seed{seed}_{test}.npz', recipe=name, seed=seed, test=test,
                        fs=learn.dls.fs, unit=learn.dls.score_unit, zoom_start=a, y=y0[a:b].astype(np.float32),
                        p=(p[a:b, 0] * scale).astype(np.float32), block=BLOCK, block_start=n_init,
                        block_rmse=np.sqrt((blocks(e)**2).mean(1)).astype(np.float32),
                        block_ymax=np.abs(blocks(y0)).max(1).astype(np.float32), train_ymax=train_ymax,
                        rmse=float(np.sqrt((e[n_init:]**2).mean())))


def run_one(name:str, seed:int, quick:bool, predictions:bool=False) -> dict:
    "Train recipe `name` with `seed` and score it on the official test sets"
    import torch
    from fastai.basics import set_seed
    import tsfast_lite.inference  # noqa: F401  (patches predict_sequence, evaluate_tests)
    recipe = RECIPES[name]
    dls = make_dls(recipe, quick)
    set_seed(seed)
    learn = make_learner(recipe, dls)
    n_epoch = 1 if quick else recipe['fit']['n_epoch']
    times = epoch_times_cb()
    t0 = time.perf_counter()
    with learn.no_bar(): learn.fit_flat_cos(n_epoch, lr=recipe['fit']['lr'], cbs=[times])
    train_s = time.perf_counter() - t0
    res, res_est = (learn.evaluate_tests(plot=False, init=init) for init in ('zero', 'estimate'))
    col = next(c for c in res.columns if c.startswith('rmse'))
    enc = {}
    if getattr(learn.model, 'encoder', None) is not None:  # a learned initial state: scored from it too
        enc = dict(rmse_enc={k: float(v) for k, v in learn.evaluate_tests(plot=False, init='encoder')[col].items()})
    if predictions and not quick and recipe['benchmark'] == 'silverbox': save_predictions(learn, name, seed)
    return dict(recipe=name, benchmark=recipe['benchmark'], family=recipe.get('family', 'rnn'), seed=seed, quick=quick,
                n_epoch=n_epoch, learner=recipe['learner'], head_gain=_head_gain(learn.model.model),
                n_params=sum(p.numel() for p in learn.model.parameters()),  # the encoder's included
                train_s=train_s, epoch_wall_s=times.wall, epoch_cpu_s=times.cpu,
                valid=[float(v) for v in learn.recorder.values[-1]],
                rmse={k: float(v) for k, v in res[col].items()}, unit=col,
                rmse_est={k: float(v) for k, v in res_est[col].items()}, **enc, threads=torch.get_num_threads(),
                host=platform.node(), time=time.strftime('%Y-%m-%d %H:%M:%S'))


def run_tsfast(python:str, name:str, seed:int, quick:bool) -> dict:
    "Run a `TSFAST_RECIPES` entry in the tsfast environment `python` (a worker process) and return its result row"
    import subprocess, tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [python, __file__, '--tsfast-worker', name, str(seed), tmp] + (['--quick'] if quick else [])
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    if p.returncode: raise RuntimeError(f"the tsfast worker for {name} seed {seed} failed (exit {p.returncode}; see above)")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return dict(r, recipe=name, benchmark=TSFAST_RECIPES[name]['benchmark'], seed=seed, quick=quick,
                host=platform.node(), time=time.strftime('%Y-%m-%d %H:%M:%S'))


def tsfast_worker(name:str, seed:int, folder:str, quick:bool, threads:int):
    "In the tsfast environment: train `name` with tsfast 0.5.0 and score it on Silverbox's test sets (JSON on stdout)"
    import contextlib, io, random
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_speed import write_hdf5
    from tsfast_lite.data.benchmarks import silverbox_dataset, SILVERBOX_N_INIT
    import torch, tsfast
    from tsfast.tsdata import create_dls
    from tsfast.training import RNNLearner
    torch.set_num_threads(threads)
    fit = TSFAST_RECIPES[name]['fit']
    with contextlib.redirect_stdout(io.StringIO()):
        files = write_hdf5(Path(folder))
        torch.manual_seed(seed); np.random.seed(seed); random.seed(seed)
        dls = create_dls(['u'], ['y'], files, **{**W2, **(dict(n_batches_train=2) if quick else {})})
        learn = RNNLearner(dls, n_skip=50, show_bar=False)
        n_epoch = 1 if quick else fit['n_epoch']
        t0 = time.perf_counter()
        learn.fit_flat_cos(n_epoch, lr=fit['lr'])
        train_s = time.perf_counter() - t0
        model, rmse = learn.model.eval(), {}
        with torch.no_grad():  # free run from the zero state over the whole record, RMSE on y[n_init:] in mV
            for r in silverbox_dataset()['test']:
                u = torch.as_tensor(r.get(['u']), dtype=torch.float32, device=learn.device)[None]
                p = model(u)
                p = (p[0] if isinstance(p, tuple) else p)[0, :, 0].double().cpu().numpy()
                e = p[SILVERBOX_N_INIT:] - r.get(['y'])[SILVERBOX_N_INIT:, 0]
                rmse[r.name] = float(np.sqrt(np.mean(e**2)) * 1000)
    print(json.dumps(dict(n_epoch=n_epoch, train_s=train_s, valid=[float(v) for v in learn.recorder[-1][1:]],
                          rmse=rmse, unit='rmse [mV]', threads=torch.get_num_threads(), version=tsfast.__version__)))


def _fmt(vals, digits=3):
    if not vals: return '–'
    if len(vals) == 1: return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def _order(names) -> list:
    "Recipe names without repeats, in the order of the recipe dictionaries (unknown names last)"
    names, known = list(dict.fromkeys(names)), list(ALL_RECIPES)
    return sorted(names, key=lambda n: known.index(n) if n in known else len(known))


# The scorings of a run: simulation from the zero state, from the state estimated on the n_init samples, and (for
# a recipe with a learned encoder) from the encoder's state.
INITS = [('rmse', ''), ('rmse_est', ', state estimated'), ('rmse_enc', ', learned encoder')]

def table(rows:list, quick:bool=False) -> str:
    "Markdown tables, one per benchmark: our recipes (mean ± sample std over seeds, training time) and published numbers"
    out = ["# Accuracy on the official test sets" + (" (QUICK smoke run: numbers meaningless)" if quick else ''), '',
           "Free-run simulation RMSE, scored on y[n_init:] (`evaluate_tests`), from the zero state or, in the rows "
           "marked *state estimated*, from the initial state estimated on the n_init initialisation samples "
           "(`evaluate_tests(init='estimate')`), and in the rows marked *learned encoder* from the state the recipe's "
           "learned encoder reads off those samples (`init='encoder'`). Ours: mean ± sample standard deviation over seeds; training time is "
           "wall-clock for `fit_flat_cos` incl. validation, "
           f"with {rows[0]['threads'] if rows else '?'} torch thread(s) on a 2-core machine shared with other jobs.", '']
    for bm, tests in TEST_ORDER.items():
        mine = [r for r in rows if r['benchmark'] == bm]
        if not mine and bm not in PUBLISHED: continue
        out += [f"## {TITLES[bm]}", '', '| model / recipe | ' + ' | '.join(tests) + ' | seeds | train time [min] |',
                '|---' * (len(tests) + 3) + '|']
        for name in _order(r['recipe'] for r in mine):
            for key, init in INITS:
                rs = sorted((r for r in mine if r['recipe'] == name and key in r), key=lambda r: r['seed'])
                if not rs: continue
                cells = [_fmt([r[key][t] for r in rs if t in r[key]]) for t in tests]
                tmin = _fmt([r['train_s'] / 60 for r in rs], 1)
                who = f"tsfast {rs[0]['version']} (run here)" if name in TSFAST_RECIPES else 'tsfast_lite'
                out.append(f"| {who} `{name}`{init} | " + ' | '.join(cells) +
                           f" | {', '.join(str(r['seed']) for r in rs)} | {tmin} |")
        for name, vals in PUBLISHED.get(bm, {}).items():
            out.append(f"| {name} (published) | " + ' | '.join(f"{vals[t]:.3f}" if t in vals else '–' for t in tests)
                       + ' | | |')
        out.append('')
    out += ['## Recipes', '']
    for name in _order(r['recipe'] for r in rows):
        out.append(f"- `{name}`: {ALL_RECIPES[name]['doc']}")
    return '\n'.join(out) + '\n'


def load_rows(path=None) -> list:
    "The runs in the .jsonl next to `path` (default: results/accuracy.md); a later run of a (recipe, seed) replaces an earlier"
    log = Path(path or ROOT/'benchmarks'/'results'/'accuracy.md').with_suffix('.jsonl')
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()] if log.exists() else []
    return list({(r['recipe'], r['seed']): r for r in rows}.values())


def plot(rows:list, fname=None):
    "Bar chart of every test set: our recipes (mean, with the spread over seeds) beside the published results"
    import matplotlib.pyplot as plt
    panels = [(bm, t) for bm, tests in TEST_ORDER.items() for t in tests
              if any(r['benchmark'] == bm for r in rows) or bm in PUBLISHED]
    n_bars = [len({(r['recipe'], k) for r in rows if r['benchmark'] == bm for k, _ in INITS if k in r})
              + sum(t in v for v in PUBLISHED.get(bm, {}).values()) for bm, t in panels]
    fig, axs = plt.subplots(len(panels), 1, figsize=(8, 1.0 * len(panels) + 0.25 * sum(n_bars)),
                            gridspec_kw=dict(height_ratios=[n + 1 for n in n_bars]))
    for ax, (bm, t) in zip(np.atleast_1d(axs), panels):
        names, means, errs, colors = [], [], [], []
        for name in _order(r['recipe'] for r in rows if r['benchmark'] == bm):
            for key, init in INITS:
                v = [r[key][t] for r in rows if r['recipe'] == name and t in r.get(key, {})]
                if not v: continue
                names.append(name + init); means.append(np.mean(v)); errs.append(np.std(v, ddof=1) if len(v) > 1 else 0)
                colors.append('tab:orange' if name in TSFAST_RECIPES else
                              {'rmse_est': 'tab:green', 'rmse_enc': 'tab:purple'}.get(key, 'tab:blue'))
        for name, vals in PUBLISHED.get(bm, {}).items():
            if t in vals: names.append(f'{name} (published)'); means.append(vals[t]); errs.append(0); colors.append('0.6')
        y = np.arange(len(names))[::-1]
        ax.barh(y, means, xerr=errs, color=colors, height=0.7)
        for yi, m, e in zip(y, means, errs): ax.text(m + e, yi, f' {m:.3g}', va='center', fontsize=8)
        names = [f'{n} (tsfast {r0["version"]}, run here)' if n in TSFAST_RECIPES and (r0 := next(r for r in rows if r['recipe'] == n)) else n
                 for n in names]
        ax.set_yticks(y, names, fontsize=8); ax.set_xlim(0, max(m + e for m, e in zip(means, errs)) * 1.18)
        ax.set_title(f"{TITLES[bm].split(' [')[0]} – {t} [{TITLES[bm].split('[')[1]}", fontsize=9, loc='left')
    np.atleast_1d(axs)[-1].set_xlabel('simulation RMSE on the test set (lower is better)')
    fig.tight_layout()
    if fname: fig.savefig(fname, dpi=110)
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipes', nargs='+', default=DEFAULT_RECIPES, choices=list(RECIPES) + list(TSFAST_RECIPES),
                   help='recipes to run (tsfast_* ones need --tsfast-python)')
    p.add_argument('--tsfast-python', default=os.environ.get('TSFAST_PYTHON'),
                   help='python of an environment with tsfast 0.5.0 installed, for the tsfast_* reference recipes')
    p.add_argument('--tsfast-worker', nargs=3, metavar=('RECIPE', 'SEED', 'FOLDER'), help=argparse.SUPPRESS)
    p.add_argument('--seeds', type=int, default=1, help='number of seeds (0, 1, ..., seeds-1)')
    p.add_argument('--first-seed', type=int, default=0, help='first seed')
    p.add_argument('--quick', action='store_true', help='smoke run: 1 epoch of 2 window-batches per recipe')
    p.add_argument('--out', default=None, help='markdown table to write (default benchmarks/results/accuracy.md, '
                   'or accuracy_quick.md with --quick); runs are appended to the same name with .jsonl')
    p.add_argument('--table-only', action='store_true', help='rebuild the table from the .jsonl without training')
    p.add_argument('--predictions', action='store_true', help="keep part of every Silverbox run's simulation of "
                   'arrow_full in results/predictions/ (the figure of the "Choosing a model" guide page)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1: on a shared machine more '
                   'threads than free cores make small RNNs many times slower; see benchmarks/README.md)')
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    if a.tsfast_worker:
        name, seed, folder = a.tsfast_worker
        return tsfast_worker(name, int(seed), folder, a.quick, a.threads)
    missing = [r for r in a.recipes if r in TSFAST_RECIPES and not a.tsfast_python]
    if missing: p.error(f"recipes {missing} run tsfast 0.5.0: give --tsfast-python (a python where tsfast is installed)")
    out = Path(a.out or ROOT/'benchmarks'/'results'/('accuracy_quick.md' if a.quick else 'accuracy.md'))
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix('.jsonl')
    if a.quick and log.exists() and not a.table_only: log.unlink()
    rows = lambda: load_rows(out)
    if not a.table_only:
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            for name in a.recipes:
                print(f"=== {name} seed {seed}: {ALL_RECIPES[name]['doc']}", flush=True)
                r = (run_tsfast(a.tsfast_python, name, seed, a.quick) if name in TSFAST_RECIPES
                     else run_one(name, seed, a.quick, a.predictions))
                print(f"=== {name} seed {seed}: {r['train_s']/60:.1f} min, {r['unit']} {r['rmse']}", flush=True)
                with log.open('a') as f: f.write(json.dumps(r) + '\n')
                out.write_text(table(rows(), a.quick))
    text = table(rows(), a.quick)
    out.write_text(text)
    import matplotlib; matplotlib.use('Agg')
    plot(rows(), out.with_suffix('.png'))
    print(text)
    print(f"written: {out}, {out.with_suffix('.png')}, runs in {log}")


if __name__ == '__main__': main()

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

# Published simulation RMSE on the official test sets, in the benchmark's unit, each with its source: read from the
# benchmark specs (`tsfast_lite.data.benchmarks.BENCHMARK_SPECS`), as are the test sets' order and the titles
from tsfast_lite.data.benchmarks import BENCHMARK_SPECS  # noqa: E402  (numpy only: pages that read results need no torch)
_FILE_SPECS = {k: b for k, b in BENCHMARK_SPECS.items() if not b.simulated}
PUBLISHED = {k: {p.model: p.scores for p in b.published} for k, b in _FILE_SPECS.items() if b.published}
SOURCES = {k: {p.model: p.source for p in b.published} for k, b in _FILE_SPECS.items() if b.published}
TEST_ORDER = {k: list(b.tests) for k, b in _FILE_SPECS.items()}
TITLES = {k: b.score_title for k, b in _FILE_SPECS.items()}

# The recipes: `tsfast_lite.recipes.Recipe`s. Those of the library (`RECIPES` of tsfast_lite.recipes: each benchmark's
# `best`, one per model family, `encoder`) are taken from it under the names their runs carry in results/accuracy.jsonl;
# the others are the measurements that chose them (levers, schedules, head gains, tsfast's W2 recipe).
from tsfast_lite.recipes import Recipe, get_recipe  # noqa: E402  (imports torch and fastai)

def _recipe(benchmark, doc, dls, n_epoch, lr=3e-3, family='rnn', **learner) -> Recipe:
    return Recipe('', benchmark, dls, family, learner, n_epoch, lr, why=doc)

W2 = dict(bs=64, win_sz=200, stp_sz=1, n_batches_train=300)  # tsfast's default recipe, W2 in the performance issue
TBPTT_5000 = dict(bs=16, win_sz=5000, stp_sz=10, sub_seq_len=250, n_batches_train=40)

def _w2(benchmark, doc, head_gain, lr=3e-3, **kw):
    return _recipe(benchmark, doc, W2, 10, lr, rnn_type='gru', hidden_size=100, n_skip=50, head_gain=head_gain, **kw)

def _tutorial(doc, sub_seq_len, head_gain):
    dls = dict(bs=16, win_sz=500, stp_sz=10, **({} if sub_seq_len is None else dict(sub_seq_len=sub_seq_len)))
    return _recipe('silverbox', doc, dls, 10, rnn_type='lstm', hidden_size=40, head_gain=head_gain)

def _tbptt_5000(doc, n_epoch, hidden_size=64, benchmark='silverbox', head_gain=100., lr=3e-3):
    return _recipe(benchmark, doc, TBPTT_5000, n_epoch, lr, rnn_type='lstm', hidden_size=hidden_size, n_skip=50,
                   head_gain=head_gain)

NEW_PREFIXES = {'emps': 'em', 'ced': 'ced', 'bouc_wen': 'bw', 'wh_process_noise': 'pn'}
# name in the results -> (benchmark, name) of the library's recipe
LIBRARY = {**{f'{p}_{k}': (b, f) for b, p in (('silverbox', 'sb'), ('wiener_hammerstein', 'wh'), ('cascaded_tanks', 'ct'))
              for k, f in (('tcn', 'tcn'), ('lru', 'lru'), ('linear_ss', 'linear_ss'), ('best', 'best'))},
           'sb_lstm_tbptt_5000_e25': ('silverbox', 'rnn'), 'sb_lstm_tbptt_5000_e25_enc': ('silverbox', 'encoder'),
           'wh_lstm_tbptt_5000_e25': ('wiener_hammerstein', 'rnn'), 'wh_lstm_tbptt_5000_e25_enc': ('wiener_hammerstein', 'encoder'),
           'ct_gru': ('cascaded_tanks', 'rnn'), 'ct_gru_enc': ('cascaded_tanks', 'encoder'),
           # the system-identification structures on every benchmark (Silverbox's PNLSS and WH's block model made for them)
           **{f'{p}_{k}': (b, k) for b, p in (('silverbox', 'sb'), ('wiener_hammerstein', 'wh'), ('cascaded_tanks', 'ct'))
              for k in ('nonlinear_ss', 'blocks')},
           # the four benchmarks added later: every recipe of the library under `<prefix>_<recipe name>`
           **{f'{p}_{k}': (b, k) for b, p in NEW_PREFIXES.items()
              for k in ('rnn', 'tcn', 'lru', 'linear_ss', 'nonlinear_ss', 'blocks', 'encoder', 'best')},
           # multiple shooting: every window from its least-squares initial state (EMPS)
           'em_shooting': ('emps', 'shooting'),
           # and then fine-tuned on long windows (`finetune`)
           'em_shooting_long': ('emps', 'shooting_long'),
           # the Fine Steering Mirror: one recipe per family and `best`
           **{f'fsm_{k}': ('fine_steering_mirror', k) for k in ('rnn', 'tcn', 'lru', 'linear_ss', 'nonlinear_ss', 'blocks', 'best')}}

RECIPES = {n: get_recipe(*bn) for n, bn in LIBRARY.items()}
RECIPES.update({
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
    'sb_lstm_tbptt_5000_e50': _tbptt_5000("as `sb_lstm_tbptt_5000_e25`, 50 epochs (2,000 window-batches, 40,000 "
                                          "updates)", 50),
    'sb_lstm_tbptt_5000_e75': _tbptt_5000("as `sb_lstm_tbptt_5000_e25`, 75 epochs (3,000 window-batches, 60,000 "
                                          "updates)", 75),
    'sb_lstm_tbptt_5000_e100': _tbptt_5000("as `sb_lstm_tbptt_5000_e25`, 100 epochs (4,000 window-batches, 80,000 "
                                           "updates)", 100),
    'sb_lstm100_tbptt_5000_e25': _tbptt_5000("as `sb_lstm_tbptt_5000_e25` with LSTM 100", 25, hidden_size=100),
    'sb_lstm100_tbptt_5000_e50': _tbptt_5000("as `sb_lstm_tbptt_5000_e50` with LSTM 100", 50, hidden_size=100),
    'wh_gru_w2': _w2('wiener_hammerstein', "W2 on Wiener-Hammerstein with head_gain=1: GRU 100, bs 64, win_sz 200, "
                     "stp_sz 1, 300 batches/epoch, n_skip 50, fit_flat_cos(10, 3e-3)", 1.),
    'wh_gru_w2_gain10': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=10", 10.),
    'wh_gru_w2_gain30': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=30, RNNLearner's default", 30.),
    'wh_gru_w2_gain100': _w2('wiener_hammerstein', "`wh_gru_w2` with head_gain=100", 100.),
    'wh_lstm_tbptt_5000_e75': _tbptt_5000("as `wh_lstm_tbptt_5000_e25`, 75 epochs", 75, benchmark='wiener_hammerstein',
                                          head_gain=30.),
    'wh_lstm_tbptt_5000_e100': _tbptt_5000("as `wh_lstm_tbptt_5000_e25`, 100 epochs", 100,
                                           benchmark='wiener_hammerstein', head_gain=30.),
    'wh_lstm_tbptt_5000_e25_lr1e-2': _tbptt_5000("as `wh_lstm_tbptt_5000_e25` with lr 1e-2", 25,
                                                 benchmark='wiener_hammerstein', head_gain=30., lr=1e-2),
    'wh_lstm_tbptt_5000_e25_gain100': _tbptt_5000("as `wh_lstm_tbptt_5000_e25` with head_gain=100", 25,
                                                  benchmark='wiener_hammerstein', head_gain=100.),
    # the `best` recipes before the system-identification structures measured better (their runs keep these names)
    'wh_lstm_tbptt_5000_e50': _tbptt_5000("as `wh_lstm_tbptt_5000_e25`, 50 epochs, from the estimated state (the `best` "
                                          "recipe until `wh_nonlinear_ss` measured better)", 50, benchmark='wiener_hammerstein',
                                          head_gain=30.).replace(init='estimate'),
    'bw_lstm_e30': RECIPES['bw_rnn'].replace(why="`bw_rnn` for 30 epochs, from the estimated state (the `best` recipe until "
                                             "`bw_nonlinear_ss` measured better)", n_epoch=30, init='estimate'),
    'em_shooting_keep_best': RECIPES['em_shooting'].replace(why="`em_shooting` keeping the weights of the epoch whose free "
                                                            "run of the validation record was best (`keep_best=True`)", keep_best=True),
    'sb_lstm_best': get_recipe('silverbox', 'rnn').replace(
        name='best_lstm', n_epoch=50, init='estimate',
        why="The `best` recipe until the polynomial state space trained by Levenberg-Marquardt, `sb_best`, measured better"),
    # multiple shooting on Wiener-Hammerstein (SUBNET's training mode): the `best` structure (nonlinear state space nx 8, f
    # and h MLPs) on many short windows, each from its least-squares state, against the long-window TBPTT of `wh_best`
    'wh_shooting': Recipe('shooting', 'wiener_hammerstein', dict(win_sz=300, stp_sz=1, bs=256, n_batches_train=20), 'nonlinear_ss',
                          dict(nx=8, f='mlp', encoder='lstsq'), n_epoch=60, lr=3e-3, init='encoder',
                          why="Multiple shooting with the nonlinear state space of `wh_nonlinear_ss`: many short windows, each from its least-squares state"),
    'em_shooting_lr1e-3': RECIPES['em_shooting'].replace(why="`em_shooting` with lr 1e-3 (chosen on seed 0, 3.1 mm there)", lr=1e-3),
    'em_tcn_est': RECIPES['em_tcn'].replace(why="`em_tcn` from the estimated state (the `best` recipe until `em_shooting` "
                                            "measured better)", init='estimate'),
    'pn_linear_ss_est': RECIPES['pn_linear_ss'].replace(why="`pn_linear_ss` from the estimated state (the `best` recipe "
                                                        "until `pn_blocks` measured better)", init='estimate'),
    'ct_gru_gain1': RECIPES['ct_gru'].replace(why="`ct_gru` with head_gain=1", learner=dict(head_gain=1.)),
    'ct_gru_gain30': RECIPES['ct_gru'].replace(why="`ct_gru` with head_gain=30, RNNLearner's default",
                                               learner=dict(head_gain=30.)),
    'ct_gru_enc_w200': RECIPES['ct_gru_enc'].replace(
        why="`ct_gru_enc` with win_sz 200 (the encoder reads 50 samples, the model simulates 150)", dls=dict(win_sz=200)),
    'ct_gru_enc_h64': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with GRU 64", learner=dict(hidden_size=64)),
    'ct_gru_enc_e300': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc`, 300 epochs", n_epoch=300),
    'ct_gru_enc_wd0.1': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with weight decay 0.1 (fastai's default 0.01)",
                                                      learner=dict(wd=0.1)),
    'ct_gru_enc_wd1': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with weight decay 1", learner=dict(wd=1.)),
    'ct_gru_enc_h16': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with GRU 16", learner=dict(hidden_size=16)),
    'ct_gru_enc_e50': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc`, 50 epochs", n_epoch=50),
    'ct_gru_enc_vf0.1': RECIPES['ct_gru_enc'].replace(
        why="`ct_gru_enc` validated on the last 10% of train_val instead of 20% (more training data)", dls=dict(valid_frac=0.1)),
    'ct_gru_enc_h16_vf0.1': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with GRU 16, validated on the last 10% of train_val",
                                                          learner=dict(hidden_size=16), dls=dict(valid_frac=0.1)),
    'ct_lstm_enc': RECIPES['ct_gru_enc'].replace(why="`ct_gru_enc` with an LSTM 32 instead of the GRU", learner=dict(rnn_type='lstm')),
})
# the learning curves of the structures made for their benchmark (and of the nonlinear state space on WH, the best
# 5-minute recipe there): the same recipe with fewer and more epochs
# (fit_flat_cos anneals over whatever the budget is, so each point is a whole run, not a snapshot of a longer one)
for _name, _epochs in (('sb_nonlinear_ss', (5, 10, 40)), ('wh_blocks', (10, 30, 300)), ('wh_nonlinear_ss', (50,)),
                       ('em_shooting', (10, 20)), ('wh_shooting', (20,)), ('fsm_nonlinear_ss', (50,))):
    for _e in _epochs:
        RECIPES[f'{_name}_e{_e}'] = RECIPES[_name].replace(why=f"`{_name}` with {_e} epochs instead of {RECIPES[_name].n_epoch}", n_epoch=_e)
RECIPES = {n: r.replace(name=n) for n, r in RECIPES.items()}

# One recipe per model family and benchmark, each about 4 minutes of training on one CPU thread (the "Choosing a
# model" guide page), and the same RNN recipe with a learned initial state
_SYSID = ('nonlinear_ss', 'blocks')
FAMILY_RECIPES = {
    'silverbox': {'rnn': 'sb_lstm_tbptt_5000_e25', 'tcn': 'sb_tcn', 'lru': 'sb_lru', 'linear_ss': 'sb_linear_ss',
                  **{f: f'sb_{f}' for f in _SYSID}},
    'wiener_hammerstein': {'rnn': 'wh_lstm_tbptt_5000_e25', 'tcn': 'wh_tcn', 'lru': 'wh_lru', 'linear_ss': 'wh_linear_ss',
                           **{f: f'wh_{f}' for f in _SYSID}},
    'cascaded_tanks': {'rnn': 'ct_gru', 'tcn': 'ct_tcn', 'lru': 'ct_lru', 'linear_ss': 'ct_linear_ss', **{f: f'ct_{f}' for f in _SYSID}},
    **{b: {f: f'{p}_{f}' for f in ('rnn', 'tcn', 'lru', 'linear_ss', *_SYSID)} for b, p in NEW_PREFIXES.items()},
    'fine_steering_mirror': {f: f'fsm_{f}' for f in ('rnn', 'tcn', 'lru', 'linear_ss', *_SYSID)},
}
ENCODER_RECIPES = {'silverbox': 'sb_lstm_tbptt_5000_e25_enc', 'wiener_hammerstein': 'wh_lstm_tbptt_5000_e25_enc',
                   'cascaded_tanks': 'ct_gru_enc', **{b: f'{p}_encoder' for b, p in NEW_PREFIXES.items()}}
BEST_RECIPES = {'silverbox': 'sb_best', 'wiener_hammerstein': 'wh_best', 'cascaded_tanks': 'ct_best',
                **{b: f'{p}_best' for b, p in NEW_PREFIXES.items()}, 'fine_steering_mirror': 'fsm_best'}
DEFAULT_RECIPES = list(BEST_RECIPES.values())

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


def save_test_simulation(learn, name:str, seed:int, test:str='test', every:int=5):
    "Keep the free-run simulation of test `test` from the learner's encoder (every `every`-th sample) in results/predictions/"
    u, y = learn.dls.test_sets[test]
    n = learn.model.encoder.n_init
    p = learn.predict_sequence(u[n:], state=learn.encode_state(u[:n], y[:n]))
    scale, n_init = learn.dls.score_scale, learn.dls.n_init
    e = (p[n_init - n:, 0] - y[n_init:, 0]) * scale
    PREDICTIONS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(PREDICTIONS/f'{name}_seed{seed}_{test}.npz', recipe=name, seed=seed, test=test, fs=learn.dls.fs / every,
                        unit=learn.dls.score_unit, y=(y[n::every, 0] * scale).astype(np.float32),
                        p=(p[::every, 0] * scale).astype(np.float32), start=n, every=every,
                        rmse=float(np.sqrt((e**2).mean())))


def _doc(name:str) -> str: return getattr(ALL_RECIPES[name], 'doc', None) or ALL_RECIPES[name]['doc']

def _scores(res, col) -> tuple:
    "({test set: RMSE}, {test set: {output: RMSE}} or None): with several outputs a set's RMSE is their mean, the official "
    "template's number to submit (the Fine Steering Mirror's)"
    if res.index.nlevels == 1: return {k: float(v) for k, v in res[col].items()}, None
    per = {}
    for (t, o), v in res[col].items(): per.setdefault(t, {})[o] = float(v)
    return {t: float(np.mean(list(d.values()))) for t, d in per.items()}, per

def run_one(name:str, seed:int, quick:bool, predictions:bool=False) -> dict:
    "Train recipe `name` with `seed` (`tsfast_lite.recipes.train_recipe`) and score it on the official test sets"
    import torch
    from tsfast_lite.recipes import train_recipe
    r = RECIPES[name]
    times = epoch_times_cb()
    quick_kw = dict(n_epoch=1, dls=dict(n_batches_train=2)) if quick else {}
    if quick and r.lm_iter: quick_kw.update(n_epoch=0 if not r.n_epoch else 1, lm_iter=1)   # one LM iteration
    if quick and r.finetune: quick_kw.update(finetune_epochs=1)   # one epoch of the fine-tuning stage
    lm_iter = quick_kw.pop('lm_iter', None)
    learn, res = train_recipe(r.benchmark, r if lm_iter is None else r.replace(lm_iter=lm_iter), seed=seed, init='zero', cbs=[times], **quick_kw)
    res_est = learn.evaluate_tests(plot=False, init='estimate')
    col = next(c for c in res.columns if c.startswith('rmse'))
    enc = {}
    if getattr(learn.model, 'encoder', None) is not None:  # a learned initial state: scored from it too
        enc = dict(rmse_enc=_scores(learn.evaluate_tests(plot=False, init='encoder'), col)[0])
    if predictions and not quick and r.benchmark == 'silverbox': save_predictions(learn, name, seed)
    if predictions and not quick and r.benchmark == 'emps' and 'rmse_enc' in enc: save_test_simulation(learn, name, seed)
    zero, est = _scores(res, col), _scores(res_est, col)   # ({test set: RMSE}, per output or None)
    return dict(recipe=name, benchmark=r.benchmark, family=r.family, seed=seed, quick=quick,
                n_epoch=learn.recipe.n_epoch, lm_iter=learn.recipe.lm_iter, finetune=learn.recipe.finetune, learner=r.learner, dls=learn.recipe.dls, lr=r.lr, init=r.init,
                head_gain=_head_gain(learn.model.model),
                n_params=sum(p.numel() for p in learn.model.parameters()),  # the encoder's included
                train_s=learn.train_seconds, epoch_wall_s=times.wall, epoch_cpu_s=times.cpu,
                valid=[float(v) for v in learn.recorder.values[-1]],
                rmse=zero[0], unit=col, **({'rmse_outputs': zero[1]} if zero[1] else {}),
                rmse_est=est[0], **({'rmse_est_outputs': est[1]} if est[1] else {}),
                **enc, threads=torch.get_num_threads(),
                host=platform.node(), time=time.strftime('%Y-%m-%d %H:%M:%S'))


def run_tsfast(python:str, name:str, seed:int, quick:bool) -> dict:
    "Run a `TSFAST_RECIPES` entry in the tsfast environment `python` (a worker process) and return its result row"
    import subprocess, tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [python, __file__, '--tsfast-worker', name, str(seed), tmp] + (['--quick'] if quick else [])
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    if p.returncode: raise RuntimeError(f"the tsfast worker for {name} seed {seed} failed (exit {p.returncode}; see above)")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return dict(r, recipe=name, benchmark=TSFAST_RECIPES[name].benchmark, seed=seed, quick=quick,
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

# The targets of the best recipes (official test sets, mean over seeds other than the one they were chosen on) and the
# best published result of each test set
TARGETS = {('silverbox', 'multisine'): 0.25, ('silverbox', 'arrow_full'): 0.50, ('silverbox', 'arrow_no_extrapolation'): 0.22,
           ('wiener_hammerstein', 'test'): 0.30, ('cascaded_tanks', 'test'): 0.35, ('emps', 'test'): 5.0}
# the seeds each benchmark's best recipe was chosen on; the targets are judged on others (Cascaded Tanks: 1,024 samples,
# single runs are noisy, so its levers were compared over three seeds)
TUNED_SEEDS = {'silverbox': (0,), 'wiener_hammerstein': (0, 1), 'cascaded_tanks': (0, 1, 2), 'emps': (0, 1, 2, 3)}
INIT_KEYS = {'zero': 'rmse', 'estimate': 'rmse_est', 'encoder': 'rmse_enc'}

def targets(rows:list) -> list:
    "One dict per target: the benchmark's `best` recipe over its seeds not tuned on, from the recipe's own initial state"
    out = []
    for (bm, t), target in TARGETS.items():
        name = BEST_RECIPES[bm]
        r0, key = RECIPES[name], INIT_KEYS[RECIPES[name].init]
        rs = sorted((r for r in rows if r['recipe'] == name and key in r and r['seed'] not in TUNED_SEEDS[bm] and not r['quick']),
                    key=lambda r: r['seed'])
        pub = {n: v[t] for n, v in PUBLISHED[bm].items() if t in v and n not in ('grey-box',)}
        best_pub = min(pub, key=pub.get)
        vals = [r[key][t] for r in rs]
        out.append(dict(benchmark=bm, test=t, unit=TITLES[bm].split('[')[1].rstrip(']'), target=target, recipe=name,
                        init=r0.init, seeds=[r['seed'] for r in rs], values=vals,
                        mean=float(np.mean(vals)) if vals else None, std=float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                        train_min=[r['train_s'] / 60 for r in rs], threads=sorted({r['threads'] for r in rs}),
                        published=best_pub, published_value=pub[best_pub],
                        met=bool(vals) and float(np.mean(vals)) <= target))
    return out

def targets_table(rows:list) -> str:
    "The targets as a markdown table: what a reader came for first (ours, the target, met, the best published), then how"
    out = ['| benchmark | test set | ours: mean ± std | target | met | best published | `best` recipe | training [min], '
           'mean (max) | initial state | seeds |', '|---|---|---:|---:|---|---:|---|---:|---|---|']
    for d in targets(rows):
        ours = '–' if d['mean'] is None else _fmt(d['values'])
        tmin = '–' if not d['train_min'] else f"{np.mean(d['train_min']):.1f} ({max(d['train_min']):.1f})"
        out.append(f"| {TITLES[d['benchmark']].split(' [')[0]} | {d['test']} | {ours} | {d['target']:.2f} {d['unit']} | "
                   f"{'yes' if d['met'] else '**no**'} | {d['published']} {d['published_value']:.3f} | `{d['recipe']}` | {tmin} | "
                   f"{d['init']} | {', '.join(map(str, d['seeds'])) or '–'} |")
    return '\n'.join(out)


def table(rows:list, quick:bool=False) -> str:
    "Markdown tables, one per benchmark: our recipes (mean ± sample std over seeds, training time) and published numbers"
    out = ["# Accuracy on the official test sets" + (" (QUICK smoke run: numbers meaningless)" if quick else ''), '',
           "Free-run simulation RMSE, scored on y[n_init:] (`evaluate_tests`), from the zero state or, in the rows "
           "marked *state estimated*, from the initial state estimated on the n_init initialisation samples "
           "(`evaluate_tests(init='estimate')`), and in the rows marked *learned encoder* from the state the recipe's "
           "learned encoder reads off those samples (`init='encoder'`). Ours: mean ± sample standard deviation over seeds; training time is "
           "wall-clock for `fit_flat_cos` incl. validation, "
           f"with {rows[0]['threads'] if rows else '?'} torch thread(s) on a 2-core machine shared with other jobs.", '',
           "## The best recipes against the targets", '',
           "Each benchmark's `best` recipe (`tsfast-lite --benchmark B --recipe best`, `tsfast_lite.recipes`), scored from "
           "its own initial state over seeds it was not chosen on (chosen on seed 0 for Silverbox and Wiener-Hammerstein, "
           "on seeds 0 to 2 for Cascaded Tanks); training time is wall-clock on one torch thread, two runs sharing the "
           "2-core machine.", '',
           targets_table(rows), '']
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
        out.append(f"- `{name}`: {_doc(name)}")
    return '\n'.join(out) + '\n'


def load_rows(path=None) -> list:
    "The runs in the .jsonl next to `path` (default: results/accuracy.md); a later run of a (recipe, seed) replaces an earlier"
    log = Path(path or ROOT/'benchmarks'/'results'/'accuracy.md').with_suffix('.jsonl')
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()] if log.exists() else []
    return list({(r['recipe'], r['seed']): r for r in rows}.values())


def plot(rows:list, fname=None):
    "Bar chart of every test set: our recipes (mean, with the spread over seeds) beside the published results"
    import matplotlib.pyplot as plt
    panels = [(bm, t) for bm, tests in TEST_ORDER.items() for t in tests   # a panel for every test set with a bar
              if any(r['benchmark'] == bm and t in r.get(k, {}) for r in rows for k, _ in INITS)
              or any(t in v for v in PUBLISHED.get(bm, {}).values())]
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
                   'arrow_full in results/predictions/ (the figure of the "Choosing a model" guide page), and the EMPS '
                   'test simulation of runs with an initial-state estimator (the nonlinear state space chapter)')
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
                print(f"=== {name} seed {seed}: {_doc(name)}", flush=True)
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

"""Where the error on Silverbox's test sets comes from: the unknown initial state against the model itself.

Trains one recipe of bench_accuracy.py (one seed), then scores every Silverbox test set three ways and from several
first scored samples:

- `zero`: the official free run from the zero state (`evaluate_tests()`),
- `estimated`: from the state estimated on the first 50 samples (`evaluate_tests(init='estimate')`),
- `pre-run`: the model run over the 2,000 measured samples before the test record first (possible here only because
  Silverbox's test records are cut from one long measurement; not a benchmark score, a reference for what a perfect
  initial state would give).

If the `zero` RMSE falls when the first scored samples are moved later, and `estimated` matches `pre-run`, the
difference is the start-up transient of the simulation, not the model.

    python benchmarks/initial_state.py --recipe sb_lstm_tbptt_5000_e25 --seed 0
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'benchmarks'))
import bench_accuracy as BA

STARTS = [50, 100, 200, 500, 1000]
TEST_STARTS = {'multisine': 105712, 'arrow_full': 100, 'arrow_no_extrapolation': 100}  # in SNLS80mV (see SOURCE.md)
PRE = 2000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--recipe', default='sb_lstm_tbptt_5000_e25', choices=[n for n, r in BA.RECIPES.items()
                                                                          if r.benchmark == 'silverbox'])
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--quick', action='store_true', help='smoke run: 1 epoch of 2 window-batches')
    p.add_argument('--out', default=str(ROOT/'benchmarks'/'results'/'initial_state.md'))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from tsfast_lite.data import benchmarks as B
    import tsfast_lite.inference  # noqa: F401
    from tsfast_lite.recipes import train_recipe
    quick = dict(n_epoch=1, dls=dict(n_batches_train=2)) if a.quick else {}
    learn, _ = train_recipe('silverbox', BA.RECIPES[a.recipe], seed=a.seed, init='zero', **quick)  # as bench_accuracy
    train_s, dls = learn.train_seconds, learn.dls
    full = B._load_record('silverbox', 'V1', 'V2', 131072, B.SILVERBOX_FS, None, None, False)
    U, Y = full.get(['u']), full.get(['y'])
    n_init = dls.n_init
    lines = [f"# Initial state on Silverbox: `{a.recipe}`, seed {a.seed}" + (" (QUICK: meaningless)" if a.quick else ''),
             '', f"Trained in {train_s / 60:.1f} min. Simulation RMSE [mV] over the samples from `start` to the end of "
             f"each test record (the official score starts at {n_init}), and the RMS error over samples "
             f"{n_init}-{n_init + 100} (the start-up transient).", '',
             '| test set | initial state | ' + ' | '.join(f'start {s}' for s in STARTS) + f' | error {n_init}-{n_init + 100} |',
             '|---' * (len(STARTS) + 3) + '|']
    for name, (u, y) in dls.test_sets.items():
        a0 = TEST_STARTS[name]
        assert np.array_equal(U[a0:a0 + len(u)], u), name  # the record is where SOURCE.md says
        pre = min(PRE, a0)
        preds = {'zero': learn.predict_sequence(u),
                 'estimated': learn.predict_sequence(u, state=learn.estimate_state(u[:n_init], y[:n_init])),
                 'pre-run': learn.predict_sequence(U[a0 - pre:a0 + len(u)])[pre:]}
        for init, pr in preds.items():
            e = (pr - y)[:, 0] * 1000
            lines.append(f"| {name} | {init} | " + ' | '.join(f"{np.sqrt(np.mean(e[s:]**2)):.3f}" for s in STARTS)
                         + f" | {np.sqrt(np.mean(e[n_init:n_init + 100]**2)):.3f} |")
    text = '\n'.join(lines) + '\n'
    if not a.quick: Path(a.out).write_text(text)
    print(text)


if __name__ == '__main__': main()

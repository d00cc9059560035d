"""Faults: an interrupted training resumes exactly, gradients are clipped per update, the same seed gives the same run;
a saved learner loads in a process that never imported tsfast_lite; the command line refuses bad options in one line
and writes its progress to a log without bar redraws.

A non-finite loss stopping training with the weights from before the bad update is tested in the learner notebook
(nbs/02_learner/02_loop.ipynb, "A non-finite loss stops training before the update", eager and lazy checks) and,
with a checkpoint keeping the last good epoch, in nbs/02_learner/04_checkpoint.ipynb."""
import os, sys, json, time, signal, subprocess
from pathlib import Path
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.training import GradientClip
from tsfast_lite.test_utils import GradRecorderCB
from tsfast_lite.learner.checkpoint import CheckpointCB

sys.path.insert(0, str(Path(__file__).parent))
from checkpoint_job import make_learner, main, N_EPOCH, LR

JOB = Path(__file__).parent/'checkpoint_job.py'

def _job(*args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    return subprocess.Popen([sys.executable, str(JOB), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)

def _finish(proc, what, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out[-3000:]}"

def _weights(learn): return {k: v.clone() for k, v in learn.model.state_dict().items()}

def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), f"{k} differs"

def test_sigkill_then_resume_in_new_process_is_bit_identical(tmp_path):
    "Kill -9 in the middle of epoch 2 (checkpoint of epoch 1 on disk); a new process resumes; weights equal the reference"
    ref_dir, run_dir = tmp_path/'ref', tmp_path/'run'
    ref_dir.mkdir(); run_dir.mkdir()
    victim = _job('pause', '--path', run_dir, '--pause-at', 2, 3)
    main(['full', '--path', str(ref_dir), '--out', str(tmp_path/'ref.pt')])  # the reference, here, beside the victim
    flag, t0 = run_dir/'paused', time.time()
    while not flag.exists():
        if victim.poll() is not None: pytest.fail(f"the job ended before pausing:\n{victim.stdout.read()[-3000:]}")
        if time.time() - t0 > 240: victim.kill(); pytest.fail("the job did not reach the pause point in 240 s")
        time.sleep(0.05)
    ckpt = run_dir/'models'/'checkpoint.json'
    before = json.loads(ckpt.read_text())
    assert (before['epoch'], before['n_epoch'], before['schedule']) == (1, N_EPOCH, 'fit_flat_cos')
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert json.loads(ckpt.read_text()) == before  # the kill left the checkpoint as it was
    resumed = _job('resume', '--path', run_dir, '--out', tmp_path/'resumed.pt')
    _finish(resumed, 'resume')
    _assert_same(torch.load(tmp_path/'ref.pt'), torch.load(tmp_path/'resumed.pt'))
    ref_vals = json.loads((tmp_path/'ref.pt.json').read_text())
    assert json.loads((tmp_path/'resumed.pt.json').read_text()) == ref_vals  # train/valid loss of every epoch
    assert len(ref_vals) == N_EPOCH
    assert json.loads(ckpt.read_text())['epoch'] == N_EPOCH - 1

class _Interrupt(Callback):
    def __init__(self, epoch, it): self.at = (epoch, it)
    def before_batch(self):
        if self.training and (self.epoch, self.iter) == self.at: raise KeyboardInterrupt

def test_keyboard_interrupt_then_resume_in_process(tmp_path):
    "Ctrl-C in the middle of epoch 1: at most that epoch is lost, and resume_fit ends with the reference weights"
    ref = make_learner(tmp_path)
    with ref.no_bar(), ref.no_logging(): ref.fit_flat_cos(N_EPOCH, lr=LR)
    learn = make_learner(tmp_path)
    with learn.no_bar(), learn.no_logging():
        with pytest.raises(KeyboardInterrupt): learn.fit_flat_cos(N_EPOCH, lr=LR, cbs=[CheckpointCB(), _Interrupt(1, 4)])
        assert learn.load_checkpoint()['epoch'] == 0
        learn.resume_fit()
    _assert_same(_weights(ref), _weights(learn))

class _GradNorm(Callback):
    "Total gradient norm of every update at before_step, at this callback's place in the order"
    def __init__(self, order): self.order = order
    def before_fit(self): self.norms = []
    def before_step(self):
        g = [p.grad.detach().flatten() for p in self.learn.model.parameters() if p.grad is not None]
        self.norms.append(torch.cat(g).norm().item())

def test_grad_clip_bounds_every_update(tmp_path):
    max_norm = 0.05
    raw, clipped = _GradNorm(GradientClip.order - 1), _GradNorm(GradientClip.order + 1)
    learn = make_learner(tmp_path, grad_clip=max_norm, cbs=[raw, clipped])
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_cos(2, lr=1e-2)
    n_updates = 2 * len(learn.dls.train)
    assert len(raw.norms) == len(clipped.norms) == n_updates
    assert sum(n > max_norm for n in raw.norms) > n_updates // 2  # clipping was needed for most updates
    assert all(n <= max_norm * (1 + 1e-5) for n in clipped.norms), max(clipped.norms)
    assert all(c <= r * (1 + 1e-5) for r, c in zip(raw.norms, clipped.norms))

def _losses(tmp_path, seed):
    learn = make_learner(tmp_path, seed=seed, cbs=GradRecorderCB())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
    return torch.stack(learn.grad_recorder_cb.losses), _weights(learn)

def test_same_seed_bit_identical_on_cpu(tmp_path):
    (la, wa), (lb, wb), (lc, _) = _losses(tmp_path, 0), _losses(tmp_path, 0), _losses(tmp_path, 1)
    assert torch.equal(la, lb)
    _assert_same(wa, wb)
    assert not torch.equal(la, lc)  # another seed: other initialisation and window order

_LOAD = """
import json, sys, numpy as np
from fastai.learner import load_learner   # tsfast_lite is not imported: unpickling must bring what the learner needs
learn = load_learner(sys.argv[1])
u = np.load(sys.argv[2])
res = learn.evaluate_tests(test_sets={'t': (u, learn.predict_sequence(u))}, n_init=0, plot=False)
print(json.dumps(dict(pred=learn.predict_sequence(u)[:, 0].tolist(), rmse=float(res['rmse'].iloc[0]),
                      resume=callable(getattr(learn, 'resume_fit', None)), valid=len(learn.dls.valid.windows))))
"""

def test_load_learner_in_a_process_without_tsfast_lite(tmp_path):
    "fastai's load_learner in a fresh process gives a learner with all its methods (predict_sequence, evaluate_tests, ...)"
    import numpy as np
    import tsfast_lite.inference  # noqa: F401 (predict_sequence, here)
    learn = make_learner(tmp_path)
    u = np.random.default_rng(0).standard_normal((300, 1))
    np.save(tmp_path/'u.npy', u)
    learn.export(tmp_path/'learner.pkl')
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-W', 'ignore', '-c', _LOAD, str(tmp_path/'learner.pkl'), str(tmp_path/'u.npy')],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['rmse'] == 0 and out['resume'] and out['valid'] == 0
    assert np.allclose(out['pred'], learn.predict_sequence(u)[:, 0], atol=1e-6)

_CLI = "import sys; from tsfast_lite.cli import main; sys.exit(main())"  # what the `tsfast-lite` script runs

def _cli(*args, cwd):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-W', 'ignore', '-c', _CLI, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)

def test_cli_bad_option_is_a_one_line_usage_error(tmp_path):
    r = _cli('--benchmark', 'silverbocks', '--epochs', 1, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.splitlines() == ["tsfast-lite: error: benchmark='silverbocks' is unknown; valid values are "
        "['silverbox', 'wiener_hammerstein', 'cascaded_tanks', 'emps', 'ced', 'bouc_wen', 'wh_process_noise', 'duffing', "
        "'positioning', 'fine_steering_mirror'] (any case; '-', '_' and spaces ignored; the data folder names "
        "['wienerhammerstein', 'cascadedtanks', 'boucwen', 'whprocessnoise', 'finesteeringmirror'] too) "
        "(see tsfast-lite --help)"], r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written

def test_cli_log_has_one_line_per_epoch_and_runs_never_overwrite(tmp_path):
    "stdout to a pipe (a log): the epoch table, no bar redraws; a second run goes to tsfast_lite_run_2/"
    files = ['.tsfast-lite-run', 'learner.pkl', 'recipe.json', 'show_results.png', 'test_predictions.png', 'test_scores.csv']
    for i, folder in enumerate(['tsfast_lite_run', 'tsfast_lite_run_2']):
        r = _cli('--benchmark', 'duffing', '--epochs', 2, '--n-batches', 3, '--hidden-size', 8, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        log = r.stdout
        assert '\r' not in log and '|' not in log, log[:500]  # no progress bar
        lines = log.splitlines()
        head = lines.index(next(l for l in lines if l.startswith('epoch ')))
        assert [l.split()[0] for l in lines[head:head + 3]] == ['epoch', '0', '1'], lines
        note = f" (tsfast_lite_run holds an earlier run, which is kept)" if i else ''
        assert f"the run's files go to {folder}/{note}" in lines, lines
        assert sorted(p.name for p in (tmp_path/folder).iterdir()) == files
        assert len(log) < 3000, len(log)


def test_cli_two_runs_started_together_never_share_a_folder(tmp_path):
    "Two runs on one --out at the same moment: the folder is claimed when a run starts, so each gets its own and keeps all its files"
    import json
    args = ['--benchmark', 'duffing', '--epochs', 1, '--n-batches', 2, '--hidden-size', 8, '--out', 'same']
    procs = [subprocess.Popen([sys.executable, '-c', 'from tsfast_lite.cli import main; main()', *map(str, args + ['--seed', s])],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    files = ['.tsfast-lite-run', 'learner.pkl', 'recipe.json', 'show_results.png', 'test_predictions.png', 'test_scores.csv']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['same', 'same_2']
    seeds = sorted(json.loads((tmp_path/f/'recipe.json').read_text())['seed'] for f in ('same', 'same_2'))
    assert seeds == [1, 2]                                   # each folder holds one run's files, none overwritten
    for f in ('same', 'same_2'): assert sorted(p.name for p in (tmp_path/f).iterdir()) == files

"""Every model family gets every guarantee of the TBPTT machinery: the checks of `tsfast_lite.test_utils`, run for each
family of the library and for the user-written example model (`tsfast_lite.examples.NeuralStateSpace`)."""
import pytest
import torch
from tsfast_lite.test_utils import (check_chunked_prediction, check_tbptt_validation, check_tbptt_grads,
                                    check_windows_isolated, check_export, check_resume, check_lr_find,
                                    check_estimate_state, toy_dls)
from tsfast_lite.models.rnn import RNN
from tsfast_lite.examples import NeuralStateSpace

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings('ignore:.*are constant in the training records.*:UserWarning')]

def _families():
    "name -> make_model(n_u, n_y): small instances of every family (importable classes, so export can load them)"
    from tsfast_lite.models.tcn import TCN
    from tsfast_lite.models.lru import LRU
    from tsfast_lite.models.linear_ss import LinearSS
    from tsfast_lite.models.nonlinear_ss import NonlinearSS
    from tsfast_lite.models.blocks import BlockModel
    return {
        'gru': lambda n_u, n_y: RNN(n_u, n_y, 'gru', hidden_size=5),
        'lstm2': lambda n_u, n_y: RNN(n_u, n_y, 'lstm', hidden_size=4, num_layers=2),
        'tcn': lambda n_u, n_y: TCN(n_u, n_y, hidden_size=6, num_layers=3, kernel_size=3),
        'lru': lambda n_u, n_y: LRU(n_u, n_y, hidden_size=6, state_size=4, num_layers=2),
        'linear_ss_gru': lambda n_u, n_y: LinearSS(n_u, n_y, nx=3, residual='gru', hidden_size=4),
        'linear_ss_mlp': lambda n_u, n_y: LinearSS(n_u, n_y, nx=3, residual='mlp', hidden_size=4),
        'linear_ss': lambda n_u, n_y: LinearSS(n_u, n_y, nx=3, residual=None),
        'nonlinear_ss_mlp': lambda n_u, n_y: NonlinearSS(n_u, n_y, nx=3, f='mlp', hidden_size=5, num_layers=2),
        'nonlinear_ss_poly': lambda n_u, n_y: NonlinearSS(n_u, n_y, nx=2, f='poly', degree=3),
        'blocks_wh': lambda n_u, n_y: BlockModel(n_u, n_y, 'wh', nx1=2, nx2=3, branches=2, hidden_size=5),
        'blocks_wiener': lambda n_u, n_y: BlockModel(n_u, n_y, 'wiener', nx1=3, branches=n_y + 1, hidden_size=5),
        'blocks_hammerstein': lambda n_u, n_y: BlockModel(n_u, n_y, 'hammerstein', nx2=3, branches=n_u + 1, hidden_size=5),
        'neural_ss': lambda n_u, n_y: NeuralStateSpace(n_u, n_y, nx=3, hidden_size=6),
    }

FAMILIES = _families()
NAMES = list(FAMILIES)

@pytest.mark.parametrize('name', NAMES)
def test_chunked_prediction_equals_one_pass(name): check_chunked_prediction(FAMILIES[name], chunk_sizes=(1, 7, 64, 150))

@pytest.mark.parametrize('name', NAMES)
def test_tbptt_validation_equals_whole_windows(name): check_tbptt_validation(FAMILIES[name])

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('k1,k2,n_skip', [(4, 2, 1), (4, 4, 0), (4, 9, 1), (6, 3, 4)])
def test_tbptt_gradients_equal_brute_force(name, k1, k2, n_skip):
    assert check_tbptt_grads(FAMILIES[name], k1, k2, n_skip=n_skip) == 24 // k1  # one window-batch of 3 windows: win_sz / k1 updates

@pytest.mark.parametrize('name', NAMES)
def test_no_state_crosses_windows(name): check_windows_isolated(FAMILIES[name])

@pytest.mark.parametrize('name', NAMES)
def test_export_loads_in_a_fresh_process(name, tmp_path): check_export(FAMILIES[name], tmp_path)

@pytest.mark.parametrize('name', NAMES)
def test_checkpoint_resume_equals_uninterrupted_fit(name, tmp_path): check_resume(FAMILIES[name], tmp_path)

@pytest.mark.parametrize('name', NAMES)
def test_estimate_state(name): check_estimate_state(FAMILIES[name])

@pytest.mark.parametrize('name', NAMES)
def test_lr_find(name): check_lr_find(FAMILIES[name])

@pytest.mark.parametrize('name', NAMES)
def test_learned_encoder_validation_equals_whole_windows(name):
    "With a learned initial state too, sub-window validation equals whole-window validation"
    from fastai.basics import set_seed
    from tsfast_lite.learner.core import seq_learner
    make = FAMILIES[name]
    set_seed(0); lt = seq_learner(toy_dls(10), make(1, 1), encoder=5, n_skip=7)
    set_seed(0); lw = seq_learner(toy_dls(None), make(1, 1), encoder=5, n_skip=7)
    with lt.no_bar(), lt.no_logging(): lt.fit(1, lr=1e-2)
    lw.model.load_state_dict(lt.model.state_dict())
    torch.testing.assert_close(torch.tensor(lt.validate()), torch.tensor(lw.validate()), atol=1e-5, rtol=1e-5)

# Training from an initial state estimated on each window's first samples: the least-squares estimate through the
# linear part (`encoder='lstsq'`, the families with one) or a learned encoder (every other family)
LSTSQ = [n for n in NAMES if n.startswith(('linear_ss', 'nonlinear_ss'))]

def _init_kwargs(name):
    from tsfast_lite.models.encoder import LstsqState
    return dict(encoder=LstsqState(5) if name in LSTSQ else 5)

@pytest.mark.parametrize('name', NAMES)
def test_estimated_initial_state_validation_equals_whole_windows(name):
    check_tbptt_validation(FAMILIES[name], n_skip=7, **_init_kwargs(name))

@pytest.mark.parametrize('name', NAMES)
def test_estimated_initial_state_export(name, tmp_path): check_export(FAMILIES[name], tmp_path, **_init_kwargs(name))

@pytest.mark.parametrize('name', NAMES)
def test_estimated_initial_state_resume(name, tmp_path): check_resume(FAMILIES[name], tmp_path, **_init_kwargs(name))

@pytest.mark.parametrize('name', [n for n in NAMES if n not in LSTSQ])
def test_lstsq_needs_a_linear_part(name):
    from tsfast_lite.learner.core import seq_learner
    with pytest.raises(ValueError, match="has no linear part to estimate its initial state by least squares"):
        seq_learner(toy_dls(10, n_init=5), FAMILIES[name](1, 1), encoder='lstsq')

# Several inputs and outputs end to end (as on the Fine Steering Mirror: 3 x 3, a test set of several periods): every
# family's learner trains, and evaluate_tests, show_results and the test plot give each output its own number and axis
def _mimo_dls():
    import numpy as np
    from tsfast_lite.data.records import Record
    from tsfast_lite.data.loaders import create_dls
    rng = np.random.default_rng(0)
    def rec(n, name):
        u = rng.normal(size=(n, 3)); x = np.zeros((n, 3))
        for t in range(1, n): x[t] = 0.8 * x[t - 1] + 0.2 * u[t - 1] @ np.array([[1, .2, 0], [0, 1, .3], [.1, 0, 1]])
        y = np.tanh(x) * 1e-6 * np.array([1., 2., 3.])
        return Record({**{f'u{i+1}': u[:, i] for i in range(3)}, **{f'y{i+1}': y[:, i] for i in range(3)}}, fs=100., name=name)
    dls = create_dls(['u1', 'u2', 'u3'], ['y1', 'y2', 'y3'], {'train': [rec(1500, 'a'), rec(1500, 'b')], 'valid': [rec(400, 'v')], 'test': []},
                     win_sz=100, stp_sz=10, bs=8, n_batches_train=4, n_init=20, device='cpu')
    tests = [rec(300, f't{i}') for i in range(4)]
    dls.test_sets = {'level': (np.stack([r.get(['u1', 'u2', 'u3']) for r in tests]), np.stack([r.get(['y1', 'y2', 'y3']) for r in tests])),
                     'one': (tests[0].get(['u1', 'u2', 'u3']), tests[0].get(['y1', 'y2', 'y3']))}
    dls.score_unit, dls.score_scale = 'µm', 1e6
    return dls

def _mimo_learners():
    from tsfast_lite.learner.core import RNNLearner
    from tsfast_lite.learner.families import TCNLearner, LRULearner, LinearSSLearner, NonlinearSSLearner, BlockLearner
    return {'rnn': lambda d: RNNLearner(d, hidden_size=8), 'tcn': lambda d: TCNLearner(d, hidden_size=8, num_layers=2),
            'lru': lambda d: LRULearner(d, hidden_size=8, state_size=4, num_layers=1),
            'linear_ss': lambda d: LinearSSLearner(d, nx=4, hidden_size=8),
            'nonlinear_ss': lambda d: NonlinearSSLearner(d, nx=4, hidden_size=8),
            'blocks': lambda d: BlockLearner(d, structure='wh', nx=3, branches=3, hidden_size=8)}

@pytest.mark.parametrize('family', list(_mimo_learners()))
def test_several_outputs_end_to_end(family):
    import numpy as np
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import tsfast_lite.inference  # noqa: F401
    learn = _mimo_learners()[family](_mimo_dls())
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_cos(1, lr=1e-3)
    assert [m.name for m in learn.metrics] == ['fun_rmse_y1', 'fun_rmse_y2', 'fun_rmse_y3']
    res = learn.evaluate_tests(init='estimate')
    assert list(res.index) == [(t, y) for t in ('level', 'one') for y in ('y1', 'y2', 'y3')]
    assert res.loc['level', 'n_records'].tolist() == [4] * 3 and np.isnan(res.loc['one', 'n_records']).all()
    assert np.isfinite(res['rmse [µm]']).all() and (res['rmse [µm]'] > 0).all()
    # the stacked set's first record scores as the single record 'one' (the same data): its RMSE is one of the set's four
    u, y = learn.dls.test_sets['level']
    p0 = learn.predict_sequence(u[0], state=learn.estimate_state(u[0][:20], y[0][:20]))
    np.testing.assert_allclose(res.loc[('one', 'y2'), 'rmse [µm]'], 1e6 * np.sqrt(((p0 - y[0])[20:, 1] ** 2).mean()), rtol=1e-5)
    titles = [t.get_text() for sf in res.attrs['figure'].subfigs for t in sf.texts]
    assert any(t.startswith('level, record 1 of 4 (y3)') for t in titles), titles
    plt.close('all')
    learn.show_results(max_n=2)
    assert plt.gcf().axes[0].get_ylabel() == 'outputs: y1, y2, y3'
    plt.close('all')

"""Data-parallel TBPTT (`learn.distrib_ctx()` under torchrun): 2 CPU processes with 4 windows each train exactly as one
process with 8 windows per batch, for k2 = k1, k2 < k1 and k2 > k1; a fit interrupted after a checkpoint and resumed
with `resume_fit` under `distrib_ctx` ends where an uninterrupted one does. Needs the `distributed` extra (Accelerate)."""
import importlib.util
import pytest

if importlib.util.find_spec('accelerate') is None:
    pytest.skip('data-parallel tests need Accelerate: pip install -e ".[distributed]"', allow_module_level=True)

from tsfast_lite.test_utils import check_data_parallel


def test_two_processes_train_as_one():
    df = check_data_parallel(nproc=2, bs=4, k2s=(None, 5, 20), tol=1e-5)
    assert list(df.k2) == ['k1', 5, 20]
    assert (df.updates == 48).all() and (df.updates == df.updates_per_process).all()
    assert (df.max_weight_diff < 1e-5).all() and (df.max_loss_metric_diff < 1e-5).all()
    assert (df.valid_loss - df.valid_loss_ddp).abs().max() < 1e-6
    assert df.attrs['resume_weight_diff'] < 1e-5

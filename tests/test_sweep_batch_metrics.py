"""The sweep measures the cells of a fast model in batches (nodes/sweep_pictures.py): the batched
metrics must give each cell exactly what measuring it alone gives, and closed forms."""
import math

import pytest
import torch

from sweep.metrics import latent_distances, latent_rmse, psnr, psnr_groups, relative_rmse, ssim, ssim_each


def test_latent_distances_per_cell_equal_the_single_cell_forms():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 4, 6, 5, generator=g)
    cells = torch.randn(5, 2, 4, 6, 5, generator=g)
    cells[3] = ref                                                       # one cell equal to the reference
    rmse, rel = latent_distances(cells, ref)
    for k in range(5):
        assert rmse[k] == pytest.approx(latent_rmse(cells[k], ref), rel=1e-12, abs=1e-15)
        assert rel[k] == pytest.approx(relative_rmse(cells[k], ref), rel=1e-12, abs=1e-15)
    assert rmse[3] == 0.0 and rel[3] == 0.0
    # closed form: a constant offset c gives RMSE |c| and relative RMSE |c| / RMS(ref)
    rmse, rel = latent_distances(ref[None] + 0.25, ref)
    assert rmse[0] == pytest.approx(0.25) and rel[0] == pytest.approx(0.25 / float(ref.double().pow(2).mean().sqrt()))


def test_psnr_and_ssim_per_cell_equal_the_single_cell_forms():
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(3, 20, 18, 3, generator=g)                         # a reference of 3 images
    cells = [ref + 0.05 * torch.randn(3, 20, 18, 3, generator=g) for _ in range(4)]
    cells[2] = ref.clone()
    flat = torch.cat(cells).clamp(0, 1)
    got_psnr = psnr_groups(flat, ref, 4)
    got_ssim = ssim_each(flat, ref).reshape(4, -1).mean(1).tolist()
    for k in range(4):
        one = flat[3 * k:3 * k + 3]
        assert got_psnr[k] == pytest.approx(psnr(one, ref), rel=1e-12) or math.isinf(psnr(one, ref))
        assert got_ssim[k] == pytest.approx(ssim(one, ref), rel=1e-9)
    assert math.isinf(got_psnr[2]) and got_ssim[2] == pytest.approx(1.0, rel=1e-6)
    # closed form: an offset of 0.1 everywhere is MSE 0.01, 20 dB
    assert psnr_groups(torch.full((2, 8, 8, 3), 0.5), torch.full((1, 8, 8, 3), 0.4), 2) == pytest.approx([20.0, 20.0])

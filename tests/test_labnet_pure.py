"""Lab Net's pure parts against exact answers: the space-to-depth latent map, the class tokens,
the Frechet distance, and the shipped files against the model card (no ComfyUI needed)."""
import hashlib
import os
import re

import pytest
import torch

from lab import labnet
from lab.digit_scorer import DigitScorer, frechet_distance, gaussian_stats, load_scorer, score_digits


def test_latent_map_is_exact_and_invertible_4d_and_5d():
    pix = torch.rand(3, 1, 16, 16) * 2 - 1
    lat = labnet.pixels_to_latent(pix)
    assert lat.shape == (3, 4, 8, 8)
    # channel c of latent pixel (i, j) is image pixel (2i + c // 2, 2j + c % 2): space-to-depth by definition
    for c in range(4):
        assert torch.equal(lat[:, c], pix[:, 0, c // 2::2, c % 2::2])
    assert torch.equal(labnet.latent_to_pixels(lat), pix)
    video = torch.randn(2, 4, 3, 8, 8)
    frames = labnet.latent_to_pixels(video)
    assert frames.shape == (2, 1, 3, 16, 16)
    for t in range(3):
        assert torch.equal(frames[:, :, t], labnet.latent_to_pixels(video[:, :, t]))


def test_latent_map_rejects_other_ranks():
    with pytest.raises(labnet.LabNetError, match="4-D"):
        labnet.latent_to_pixels(torch.zeros(4, 8, 8))


def test_class_tokens_one_hot_with_null_class():
    ctx = labnet.class_context([0, 9, -1, labnet.NULL_CLASS])
    assert ctx.shape == (4, 1, labnet.CONTEXT_DIM)
    assert ctx.sum().item() == 4
    assert ctx[0, 0, 0] == 1 and ctx[1, 0, 9] == 1 and ctx[2, 0, labnet.NULL_CLASS] == 1 and ctx[3, 0, labnet.NULL_CLASS] == 1
    with pytest.raises(labnet.LabNetError, match="digit must be 0..9"):
        labnet.class_context([12])


def test_digits_to_pixels_range_and_size():
    img = torch.zeros(2, 8, 8)
    img[1] = 16
    pix = labnet.digits_to_pixels(img)
    assert pix.shape == (2, 1, 16, 16)
    assert torch.all(pix[0] == -1) and torch.all(pix[1] == 1)


def test_frechet_distance_exact_answers():
    d = 5
    eye = torch.eye(d, dtype=torch.float64)
    mean = torch.zeros(d, dtype=torch.float64)
    assert frechet_distance(mean, eye, mean, eye) == pytest.approx(0, abs=1e-9)
    shift = torch.arange(d, dtype=torch.float64)
    assert frechet_distance(mean, eye, shift, eye) == pytest.approx(float((shift ** 2).sum()), rel=1e-12)
    # diagonal covariances: sum (s1 - s2)^2 over the standard deviations
    s1, s2 = torch.tensor([1., 2, 3, 4, 5], dtype=torch.float64), torch.tensor([2., 2, 1, 4, 0.5], dtype=torch.float64)
    expect = float(((s1 - s2) ** 2).sum())
    assert frechet_distance(mean, torch.diag(s1 ** 2), mean, torch.diag(s2 ** 2)) == pytest.approx(expect, rel=1e-9)
    # rotation-invariant: the same pair in a rotated basis
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    c1, c2 = q @ torch.diag(s1 ** 2) @ q.T, q @ torch.diag(s2 ** 2) @ q.T
    assert frechet_distance(mean, c1, mean, c2) == pytest.approx(expect, rel=1e-7)


def test_gaussian_stats_unbiased():
    x = torch.tensor([[0.0], [2.0]])
    m, c = gaussian_stats(x)
    assert float(m) == 1.0 and float(c) == 2.0


CARD = os.path.join(labnet.WEIGHTS_DIR, "MODEL_CARD.md")


def test_shipped_files_match_the_model_card_and_fit_the_budget():
    files = list(labnet.WEIGHT_FILES.values()) + [labnet.SCORER_FILE]
    total = 0
    card = open(CARD).read()
    for name in files:
        path = os.path.join(labnet.WEIGHTS_DIR, name)
        data = open(path, "rb").read()
        total += len(data)
        sha = hashlib.sha256(data).hexdigest()
        assert re.search(rf"{re.escape(name)}.*{sha}", card), f"model card lacks {name}'s SHA-256 {sha}"
    assert total <= 10 * 1024 * 1024, f"shipped weights are {total} bytes, over the 10 MB budget"


def test_scorer_loads_and_scores_shapes():
    scorer = load_scorer()
    assert isinstance(scorer, DigitScorer)
    with pytest.raises(labnet.LabNetError, match=r"\(B, 1, 16, 16\)"):
        score_digits(scorer, torch.zeros(4, 3, 16, 16))
    with pytest.raises(labnet.LabNetError, match="at least 2"):
        score_digits(scorer, torch.zeros(1, 1, 16, 16))


def test_scorer_on_real_held_out_digits():
    """The shipped scorer on the held-out digits it never trained on: accuracy and FD floor as the card says."""
    sklearn = pytest.importorskip("sklearn.datasets")
    d = sklearn.load_digits()
    pix = labnet.digits_to_pixels(d.images)
    perm = torch.randperm(pix.shape[0], generator=torch.Generator().manual_seed(0))
    held = perm[:400]
    res = score_digits(load_scorer(), pix[held], torch.as_tensor(d.target)[held])
    assert res["accuracy"] >= 0.98
    # the reference statistics ARE the held-out features: the FD of the same images is zero to round-off
    assert res["fd_digits"] == pytest.approx(0, abs=1e-6)
    # a shuffled-label control: accuracy collapses to chance, so the check above can fail
    shuffled = torch.as_tensor(d.target)[held][torch.randperm(400, generator=torch.Generator().manual_seed(1))]
    assert score_digits(load_scorer(), pix[held], shuffled)["accuracy"] < 0.3

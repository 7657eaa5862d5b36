"""The demo's closing lines: each direction between doing nothing and the paired ceiling."""

from crossnet_dist.demo import quality_lines


def test_each_direction_is_printed_beside_the_ceiling_with_its_fd_ratio():
    metrics = {"paired_l1_a2b_ratio": 0.95, "paired_ssim_a2b_ratio": 1.04, "fd_efflite0_a2b": 60.0,
               "fd_efflite0_a2b_identity_baseline": 75.0}
    lines = quality_lines(metrics, {"source": "bench/RESULTS.md", "step": 2000, "a2b": 0.8, "b2a": 0.85})
    assert len(lines) == 2  # the heading and a2b: b2a has no pairs here
    assert "L1 ratio 0.950; paired ceiling 0.800 at step 2000 (bench/RESULTS.md)" in lines[1]
    assert "SSIM ratio 1.040" in lines[1] and "fd ratio to the untranslated input 0.800" in lines[1]


def test_without_a_recorded_ceiling_the_line_says_nothing_of_it():
    metrics = {"paired_l1_b2a_ratio": 1.01, "paired_ssim_b2a_ratio": 0.99, "fd_efflite0_b2a": 80.0,
               "fd_efflite0_b2a_identity_baseline": 80.0}
    (line,) = quality_lines(metrics, {"source": "-", "step": 0, "a2b": None, "b2a": None})[1:]
    assert "ceiling" not in line and "L1 ratio 1.010" in line

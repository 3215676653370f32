import json

import pytest
from PIL import Image
from tiny_pipelines import tiny_flux_pipeline

from resdit.cli import main


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-flux")
    tiny_flux_pipeline().save_pretrained(path)
    return path


def test_generate_loads_a_local_diffusers_flux_checkpoint(flux_dir, tmp_path, capsys):
    out = tmp_path / "img.png"
    code = main(["generate", "--model", str(flux_dir), "--base-size", "16x16", "--prompt", "a cat", "--height", "32",
                 "--width", "48", "--steps", "2", "--out", str(out), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["mode"] == "resdit" and record["size"] == [32, 48] and record["base_size"] == [16, 16]
    assert Image.open(out).size == (48, 32)


def test_generate_rejects_a_size_off_the_patch_grid_and_writes_nothing(flux_dir, tmp_path, capsys):
    out = tmp_path / "img.png"
    code = main(["generate", "--model", str(flux_dir), "--base-size", "16x16", "--prompt", "a cat", "--height", "33",
                 "--width", "32", "--steps", "2", "--out", str(out)])
    assert code == 2 and "not divisible" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_model_names_what_to_do(tmp_path, capsys):
    code = main(["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "a cat", "--height", "32", "--width",
                 "32", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "local folder in the diffusers layout" in capsys.readouterr().err


def test_unknown_prompt_words_are_a_clear_error(tmp_path, capsys):
    from resdit.toy.model import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "config.json").exists():
        pytest.skip("toy weights not built")
    code = main(["generate", "--prompt", "a purple cat", "--height", "32", "--width", "32", "--out",
                 str(tmp_path / "x.png")])
    assert code == 2 and "toy vocabulary" in capsys.readouterr().err


def test_generate_loads_a_local_sd3_checkpoint_with_offload_and_auto_chunks(tmp_path, capsys):
    from tiny_pipelines import tiny_sd3_pipeline

    folder = tmp_path / "tiny-sd3"
    tiny_sd3_pipeline().save_pretrained(folder)
    out = tmp_path / "img.png"
    code = main(["generate", "--model", str(folder), "--prompt", "a cat", "--height", "32", "--width", "128",
                 "--steps", "2", "--offload", "--window-chunk", "auto", "--out", str(out), "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["base_size"] == [32, 32]  # SD3's sample_size x the VAE factor, from the checkpoint
    assert Image.open(out).size == (128, 32)  # beyond the tiny SD3's table of 96 positions


def test_a_pipeline_resdit_does_not_support_is_refused_by_name(tmp_path, capsys):
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.pipelines import DDPMPipeline

    folder = tmp_path / "ddpm"
    DDPMPipeline(unet=UNet2DModel(sample_size=8, block_out_channels=(4, 8), norm_num_groups=4,
                                  down_block_types=("DownBlock2D", "DownBlock2D"),
                                  up_block_types=("UpBlock2D", "UpBlock2D")),
                 scheduler=DDPMScheduler()).save_pretrained(folder)
    code = main(["generate", "--model", str(folder), "--prompt", "a cat", "--height", "32", "--width", "32",
                 "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "DDPMPipeline" in err and "resdit supports the pipelines of FLUX.1, Chroma" in err
    assert not (tmp_path / "x.png").exists()


def test_generate_runs_the_local_only_phase_under_local_prompt(flux_dir, tmp_path, capsys):
    import numpy as np

    common = ["generate", "--model", str(flux_dir), "--base-size", "16x16", "--prompt", "a cat", "--height", "32",
              "--width", "48", "--steps", "4", "--local-steps", "2", "--json"]
    assert main(common + ["--out", str(tmp_path / "plain.png")]) == 0
    capsys.readouterr()
    assert main(common + ["--out", str(tmp_path / "local.png"), "--local-prompt", "fur, close up"]) == 0
    assert json.loads(capsys.readouterr().out)["local_prompt"] == "fur, close up"
    plain, local = (np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=float) for n in ("plain", "local"))
    assert np.abs(plain - local).max() > 0


def test_local_prompt_without_a_local_only_phase_is_refused_before_loading(tmp_path, capsys):
    code = main(["generate", "--model", str(tmp_path / "nowhere"), "--prompt", "a cat", "--height", "32", "--width",
                 "32", "--local-prompt", "fur", "--local-steps", "0", "--out", str(tmp_path / "x.png")])
    assert code == 2 and "local_steps=3" in capsys.readouterr().err and not list(tmp_path.iterdir())

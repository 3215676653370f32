"""Every model family through the same checks, on tiny randomly initialised models built like diffusers' own
tests: the stock model at the base size in every mode, exact removal, scaled positions equal to independent
position interpolation, the local branch equal to stock attention on each window, generations at 2x and 1:2,
and recorded probabilities that reproduce the attention output. Chroma runs with its text-padding mask."""

import json

import numpy as np
import pytest
import torch
from conftest import flux_inputs, tiny_flux
from tiny_pipelines import (
    tiny_chroma,
    tiny_chroma_pipeline,
    tiny_flux2,
    tiny_flux2_pipeline,
    tiny_flux_pipeline,
    tiny_qwenimage,
    tiny_qwenimage_controlnet_pipeline,
    tiny_zimage_controlnet_pipeline,
    tiny_qwenimage_pipeline,
    tiny_zimage,
    tiny_zimage_pipeline,
)

import resdit
from resdit import MODES, ResDiTConfig
from resdit.families import FAMILIES, by_name, family_of, pipeline_family

PROMPT = "a red cat"
TEXT = 5
# the tiny models' families whose path is FLUX's processor; SD3 has its own whole-model checks (test_real_models)
ROPE_FAMILIES = ("flux", "chroma", "flux2", "qwenimage", "zimage")
# the tiny pipelines' base size in pixels (16 x 16 tokens; Qwen-Image's VAE: 8 pixels per token, 8 x 8 tokens)
BASE = {"flux": 32, "chroma": 32, "flux2": 32, "qwenimage": 64, "zimage": 32}
# Z-Image's branches see the grid after the other tokens (the stock sequence has it first): the same attention
# summed in another order, equal to float32 rounding (measured: 6e-7 on these images)
EXACT = {"zimage": 2e-6}


def _model(family):
    return {"flux": tiny_flux, "chroma": tiny_chroma, "flux2": tiny_flux2, "qwenimage": tiny_qwenimage,
            "zimage": tiny_zimage}[family]()


def _pipe(family):
    return {"flux": tiny_flux_pipeline, "chroma": tiny_chroma_pipeline, "flux2": tiny_flux2_pipeline,
            "qwenimage": tiny_qwenimage_pipeline, "zimage": tiny_zimage_pipeline}[family]()


def _same(a, b, family):
    if family in EXACT:
        torch.testing.assert_close(a, b, atol=EXACT[family], rtol=0)
    else:
        assert torch.equal(a, b)


def _processors(model) -> dict:
    """Every attention module's processor object, by module name (Z-Image has no ``attn_processors``)."""
    return {name: m.processor for name, m in model.named_modules() if hasattr(m, "processor")}


def _first_attention(model, family):
    return model.noise_refiner[0].attention if family == "zimage" else model.transformer_blocks[0].attn


def _cfg(family, mode, **kwargs):
    return ResDiTConfig(base_size=(BASE[family], BASE[family]), mode=mode, **kwargs)


def _inputs(family, grid, masked_text=2, seed=0):
    """Transformer inputs of the family; Chroma's last ``masked_text`` text tokens are padding (its mask); FLUX.2's
    ids are ``[1, S, 4]`` integer ``(t, row, col, layer)`` as its pipelines build them."""
    if family == "zimage":  # latents per sample [C, 1, 2H, 2W] (patchified inside), caption features
        g = torch.Generator().manual_seed(seed)
        return dict(x=[torch.randn(16, 1, 2 * grid[0], 2 * grid[1], generator=g)], t=torch.full((1,), 0.5),
                    cap_feats=[torch.randn(TEXT, 16, generator=g)])
    if family == "qwenimage":  # positions from img_shapes; a bool key mask over text padding
        g = torch.Generator().manual_seed(seed)
        mask = torch.ones(1, TEXT, dtype=torch.bool)
        mask[:, TEXT - masked_text:] = False
        return dict(hidden_states=torch.randn(1, grid[0] * grid[1], 16, generator=g),
                    encoder_hidden_states=torch.randn(1, TEXT, 16, generator=g), encoder_hidden_states_mask=mask,
                    timestep=torch.full((1,), 0.5), img_shapes=[[(1, *grid)]])
    inputs = flux_inputs(grid, text_len=TEXT, seed=seed)
    if family == "flux2":
        g = torch.Generator().manual_seed(seed)
        rows, cols = _mesh(*grid)
        text = torch.zeros(TEXT, 4, dtype=torch.long)
        text[:, 3] = torch.arange(TEXT)
        return dict(hidden_states=torch.randn(1, grid[0] * grid[1], 16, generator=g),
                    encoder_hidden_states=torch.randn(1, TEXT, 48, generator=g), timestep=torch.full((1,), 0.5),
                    guidance=torch.full((1,), 3.5), img_ids=_ids(rows, cols, family).long()[None], txt_ids=text[None])
    if family == "chroma":
        del inputs["pooled_projections"]
        mask = torch.ones(1, TEXT + grid[0] * grid[1])
        mask[:, TEXT - masked_text:TEXT] = 0  # ChromaPipeline passes a float 0/1 mask
        inputs["attention_mask"] = mask
    return inputs


def _forward(model, inputs):
    with torch.no_grad():
        out = model(**inputs).sample
    return torch.stack(out) if isinstance(out, list) else out  # Z-Image: one tensor per sample


def _ids(rows, cols, family="flux"):
    """Image ids from row and column coordinates, built here (not with resdit.positions)."""
    zero = torch.zeros_like(rows)
    columns = [zero, rows, cols] + ([zero] if family == "flux2" else [])
    return torch.stack(columns, -1).float()


def _text_ids(family):
    if family == "flux2":
        return torch.stack([torch.zeros(TEXT), torch.zeros(TEXT), torch.zeros(TEXT), torch.arange(TEXT).float()], -1)
    return torch.zeros(TEXT, 3)


def _mesh(h, w, step_h=1.0, step_w=1.0):
    return (torch.arange(h, dtype=torch.float32).repeat_interleave(w) * step_h,
            torch.arange(w, dtype=torch.float32).repeat(h) * step_w)


# ------------------------------------------------------------------------------------------------ the table
def test_every_family_is_found_by_its_classes_and_its_pipelines_name():
    assert family_of(tiny_chroma())[0].name == "chroma"
    assert family_of(tiny_flux())[0].name == "flux"
    assert pipeline_family("ChromaPipeline").name == "chroma"
    assert pipeline_family("FluxControlNetPipeline").name == "flux"
    assert pipeline_family("StableDiffusion3Pipeline").name == "sd3"
    assert pipeline_family("KandinskyPipeline") is None
    with pytest.raises(TypeError, match="ChromaTransformer2DModel"):  # the error names what is supported
        family_of(torch.nn.Linear(2, 2))


def test_sd3_refuses_rope_modes_by_name_and_the_rope_families_take_every_mode():
    assert set(FAMILIES["chroma"].modes()) == set(MODES)
    with pytest.raises(resdit.ResDiTConfigError, match="does not apply to SD3.*SD3 modes"):
        by_name("sd3").check_mode("ntk")


def test_peek_reads_a_chroma_folder_without_loading(tmp_path):
    from resdit.loading import peek

    (tmp_path / "vae").mkdir()
    (tmp_path / "transformer").mkdir()
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "ChromaPipeline"}))
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({"num_attention_heads": 24,
                                                                      "attention_head_dim": 128}))
    info = peek(tmp_path)
    assert (info.family, info.pixels_per_token, info.hidden) == ("chroma", 16, 3072)


# ------------------------------------------------------------------------------------------------ pipelines
@pytest.fixture(scope="module", params=ROPE_FAMILIES)
def family_pipe(request):
    return request.param, _pipe(request.param)


def _call(pipe, height, width, steps=2):
    return pipe(prompt=PROMPT, height=height, width=width, num_inference_steps=steps,
                generator=torch.Generator().manual_seed(0), output_type="pt").images


def test_every_mode_is_the_stock_pipeline_at_the_base_size(family_pipe):
    family, pipe = family_pipe
    b = BASE[family]
    stock = _call(pipe, b, b)
    for mode in FAMILIES[family].modes():
        if MODES[mode].two_pass:
            continue
        with resdit.enabled(pipe, _cfg(family, mode)):
            out = _call(pipe, b, b)
        _same(out, stock, family)


def test_modes_a_family_cannot_take_are_refused_by_name(family_pipe):
    family, pipe = family_pipe
    for mode in sorted(set(MODES) - set(FAMILIES[family].modes())):
        with pytest.raises(resdit.ResDiTConfigError, match=f"{mode}.*does not apply to {FAMILIES[family].label}"):
            resdit.apply_resdit(pipe, _cfg(family, mode))
        assert resdit.get_state(pipe) is None


def test_generations_at_2x_and_1_2_are_finite_images_that_differ_from_direct(family_pipe):
    family, pipe = family_pipe
    b = BASE[family]
    for h, w in ((2 * b, 2 * b), (b, 2 * b)):
        direct = resdit.generate(pipe, PROMPT, _cfg(family, "direct"), h, w, 2)
        for mode in ("resdit", "resdit_fast", "resdit_paper", "tiling", "two_stage"):
            if mode not in FAMILIES[family].modes():
                continue
            if mode == "two_stage" and FAMILIES[family].img2img is None:
                calls = []
                pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
                with pytest.raises(resdit.ResDiTConfigError, match="image-to-image"):  # before the first pass
                    resdit.generate(pipe, PROMPT, _cfg(family, mode), h, w, 2)
                pipe.transformer._forward_pre_hooks.clear()
                assert calls == []
                continue
            out = resdit.generate(pipe, PROMPT, _cfg(family, mode), h, w, 2)
            assert out.shape == (1, 3, h, w) and out.isfinite().all() and out.std() > 1e-3, (family, mode, h, w)
            assert not torch.allclose(out, direct, atol=1e-4), (family, mode, h, w)


def test_removal_restores_the_exact_processors_methods_and_hooks(family_pipe):
    family, pipe = family_pipe
    t = pipe.transformer
    processors = _processors(t)
    pipe_attrs, t_attrs = set(vars(pipe)), set(vars(t))
    for mode in ("resdit", "tiling", "dype"):
        if mode not in FAMILIES[family].modes():
            continue
        with resdit.enabled(pipe, _cfg(family, mode)):
            assert set(vars(t)) != t_attrs or any(_processors(t)[k] is not v for k, v in processors.items())
        assert all(_processors(t)[k] is v for k, v in processors.items())
        assert set(vars(pipe)) == pipe_attrs and set(vars(t)) == t_attrs
        assert not t._forward_pre_hooks and resdit.get_state(pipe) is None


# ------------------------------------------------------------------------------------------------ branches
@pytest.mark.parametrize("family", ROPE_FAMILIES)
def test_scaled_positions_are_position_interpolation(family):
    model, inputs = _model(family), _inputs(family, (16, 12))
    with resdit.enabled(model, ResDiTConfig(mode="scaled_pe"), base_grid=(8, 8)):
        out = _forward(model, inputs)
    if family == "qwenimage":  # the stock model with its table replaced by one of interpolated positions
        expected = _qwen_with_table(model, inputs, _qwen_interpolated(model, (16, 12), (8, 8)))
    elif family == "zimage":
        expected = _zimage_interpolated(model, inputs, (16, 12), (8, 8))
    else:
        expected = _forward(model, dict(inputs, img_ids=_ids(*_mesh(16, 12, 8 / 16, 8 / 12), family)))  # i / (H/h)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def _zimage_interpolated(model, inputs, grid, base):
    """The stock Z-Image with its table lookup replaced, for the image's ids ``(t, i, j)``, by the formula at
    ``(t, i / s_h, j / s_w)`` (built here; the caption's ids as they are)."""
    emb = model.rope_embedder
    image_t = None

    def interpolated(ids):
        nonlocal image_t
        ids = ids.double()
        grid_rows = ids.shape[0] >= grid[0] * grid[1] and ids[0, 0] > 0 and ids[:grid[0] * grid[1], 1].max() > 0
        if grid_rows:  # the image's ids: rows and columns spread over the base size
            image_t = ids[0, 0]
            n = grid[0] * grid[1]
            ids[:n, 1] *= base[0] / grid[0]
            ids[:n, 2] *= base[1] / grid[1]
        parts = []
        for a, (dim, theta) in enumerate(zip(emb.axes_dims, [emb.theta] * 3)):
            f = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
            angles = torch.outer(ids[:, a], f).float()
            parts.append(torch.polar(torch.ones_like(angles), angles))
        return torch.cat(parts, -1)

    stock = type(emb).__call__
    type(emb).__call__ = lambda self, ids: interpolated(ids)
    try:
        out = _forward(model, inputs)
    finally:
        type(emb).__call__ = stock
    assert image_t is not None
    return out


def _qwen_interpolated(model, grid, base):
    """Qwen-Image's complex tables for position interpolation, built here from the model's own ``rope_params``:
    centred base positions ``i / s - ceil(h / 2)``, text after the base size's largest index."""
    pe = model.pos_embed
    (H, W), (h, w) = grid, base
    rows = torch.arange(H).float().repeat_interleave(W) * h / H - (h - h // 2)
    cols = torch.arange(W).float().repeat(H) * w / W - (w - w // 2)
    text = max(h // 2, w // 2) + torch.arange(TEXT).float()
    axes = pe.axes_dim
    image = torch.cat([pe.rope_params(torch.zeros(H * W), axes[0], pe.theta), pe.rope_params(rows, axes[1], pe.theta),
                       pe.rope_params(cols, axes[2], pe.theta)], 1)
    return image, torch.cat([pe.rope_params(text, a, pe.theta) for a in axes], 1)


def _qwen_with_table(model, inputs, table):
    stock = model.pos_embed.forward
    model.pos_embed.forward = lambda *args, **kwargs: table
    try:
        return _forward(model, inputs)
    finally:
        model.pos_embed.forward = stock


@pytest.mark.parametrize("family", ROPE_FAMILIES)
def test_local_branch_is_stock_attention_on_each_window(family):
    """Local phase on a hard grid of two windows: image outputs equal the stock layer on each window's tokens with
    indices 0..7 (Qwen-Image: its own table of an 8 x 8 image; Chroma: the stock mask restricted to the window);
    text outputs are the windows' mean."""
    model, inputs = _model(family), _inputs(family, (16, 8))
    attn = model.layers[0].attention if family == "zimage" else model.transformer_blocks[0].attn
    seen = {}

    def keep(module, args, kwargs, output):
        seen.update(hidden=kwargs.get("hidden_states", args[0] if args else None),
                    text=kwargs.get("encoder_hidden_states"), out=output,
                    mask=kwargs.get("attention_mask"), key_mask=kwargs.get("encoder_hidden_states_mask"),
                    freqs=kwargs.get("freqs_cis"))

    handle = attn.register_forward_hook(keep, with_kwargs=True)
    try:
        with resdit.enabled(model, ResDiTConfig(mode="resdit_no_mop_gws"), base_grid=(8, 8)):
            resdit.set_step(model, 34, 35)
            _forward(model, inputs)
    finally:
        handle.remove()
    if family == "zimage":  # one sequence [window's 64 grid tokens, the other tokens], the model's own rotations
        _zimage_windows_check(model, attn, seen)
        return
    if family == "qwenimage":  # the model's own table of an 8 x 8 image (what a window is at the base size)
        extra = dict(image_rotary_emb=model.pos_embed([(1, 8, 8)], max_txt_seq_len=TEXT, device="cpu"),
                     encoder_hidden_states_mask=seen["key_mask"])
    else:
        extra = dict(image_rotary_emb=model.pos_embed(torch.cat([_text_ids(family), _ids(*_mesh(8, 8), family)])))
    stock = []
    for rows in (slice(0, 64), slice(64, 128)):
        if seen["mask"] is not None:  # Chroma's stock [B, 1, S, S] mask on text + this window's tokens
            sel = torch.cat([torch.arange(TEXT), torch.arange(128)[rows] + TEXT])
            extra["attention_mask"] = seen["mask"][:, :, sel][:, :, :, sel]
        with torch.no_grad():
            stock.append(attn(hidden_states=seen["hidden"][:, rows], encoder_hidden_states=seen["text"], **extra))
    image_out, text_out = seen["out"]
    torch.testing.assert_close(image_out, torch.cat([s[0] for s in stock], 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text_out, (stock[0][1] + stock[1][1]) / 2, atol=1e-5, rtol=1e-5)


def _zimage_windows_check(model, attn, seen):
    """Z-Image's joint layer: each window's grid tokens (ids ``(t, 0..7, 0..7)``) then every other token, through the
    stock layer; grid outputs equal the branch's, the other tokens' outputs are the windows' mean."""
    hidden, freqs = seen["hidden"], seen["freqs"]
    n = 128
    emb = model.rope_embedder
    t = freqs[:, :1]  # the grid's t rotation: the first grid token's axis-0 part
    window = emb(torch.stack([torch.zeros(64, dtype=torch.long), *[x.long() for x in _mesh(8, 8)]], -1))
    window = torch.cat([t[..., :emb.axes_dims[0] // 2].expand(-1, 64, -1), window[None, :, emb.axes_dims[0] // 2:]], -1)
    stock = []
    for rows in (slice(0, 64), slice(64, 128)):
        seq = torch.cat([hidden[:, rows], hidden[:, n:]], 1)
        with torch.no_grad():
            stock.append(attn(seq, attention_mask=None, freqs_cis=torch.cat([window, freqs[:, n:]], 1)))
    out = seen["out"]
    torch.testing.assert_close(out[:, :n], torch.cat([s[:, :64] for s in stock], 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, n:], (stock[0][:, 64:] + stock[1][:, 64:]) / 2, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ROPE_FAMILIES)
@pytest.mark.parametrize("mode,step,branch", [("scaled_pe", 0, "global"), ("resdit", 0, "global"),
                                              ("resdit_no_mop_gws", 34, "local")])
def test_recorded_probabilities_times_values_are_the_attention_output(family, mode, step, branch, monkeypatch):
    """For a probe: recorded probabilities x values = the attention output the layer computed, per head (Chroma
    with its text mask). Full resolution: read at the output projection's input, with the layer's own values.
    Under ``resdit`` at 2x the global branch ran on 2x2 blocks: the probe's row is its block's, the values are the
    block means it attended to, and the output is the blocks' attention read before upsampling."""
    import resdit.processors as processors

    model = _model(family)
    attn = _first_attention(model, family)
    seen = {}
    unpool = processors.unpool_grid

    def keep_blocks(x, *args, **kwargs):  # the pooled branch's block outputs, before upsampling
        seen.setdefault("blocks", x)
        return unpool(x, *args, **kwargs)

    monkeypatch.setattr(processors, "unpool_grid", keep_blocks)
    hooks = [attn.to_v.register_forward_hook(lambda m, a, out: seen.setdefault("v_img", out)),
             attn.to_out[0].register_forward_pre_hook(lambda m, a: seen.setdefault("out", a[0]))]
    if family != "zimage":
        hooks.append(attn.add_v_proj.register_forward_hook(lambda m, a, out: seen.setdefault("v_txt", out)))
    probe = (3, 12)
    with resdit.enabled(model, ResDiTConfig(mode=mode), base_grid=(8, 8)) as state:
        resdit.set_step(model, step, 35)
        ran = []
        unsubscribe = state.subscribe("attention", lambda name, q, k, plan, phase, r: ran.append(r))
        try:
            with resdit.record(model, points=["probs"], layers=[0], probes=[probe]) as cache:
                _forward(model, _inputs(family, (16, 16)))
        finally:
            unsubscribe()
            for h in hooks:
                h.remove()
    probs = cache.get("probs", 0, branch=branch)[0, :, 0]  # [heads, keys]
    heads = probs.shape[0]
    pooled = branch == "global" and ran[0]["global"]["factors"] != (1, 1)
    if pooled:
        g = ran[0]["global"]
        assert g["grid"] == (8, 8) and probs.shape[-1] == g["key"].shape[1] and g["key"].shape[1] - 64 in (TEXT, 0)
        v = g["value"][0].float()
        block = (probe[0] // 2) * 8 + probe[1] // 2
        out = seen["blocks"][0, block]
    elif family == "zimage":  # the image refiner's sequence: the grid, then its pad tokens (the branches' text)
        v = seen["v_img"][0].unflatten(-1, (heads, -1))
        v = torch.cat([v[256:], v[:256]])
        out = seen["out"][0, probe[0] * 16 + probe[1]]
    else:
        v = torch.cat([seen["v_txt"], seen["v_img"]], 1)[0].unflatten(-1, (heads, -1))
        out = seen["out"][0, probe[0] * 16 + probe[1]]
    torch.testing.assert_close(out, torch.einsum("hk,khd->hd", probs, v).reshape(-1), atol=1e-5, rtol=1e-4)


def test_a_mask_that_tells_image_tokens_apart_is_refused():
    model, inputs = tiny_chroma(), _inputs("chroma", (16, 16))
    inputs["attention_mask"][:, TEXT + 3] = 0
    with resdit.enabled(model, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
        resdit.set_step(model, 20, 35)
        with pytest.raises(NotImplementedError, match="tells image tokens apart"):
            _forward(model, inputs)


def test_the_pooled_branch_sees_the_stock_mask_on_its_blocks():
    """In the global-only phase at 2x every attention runs on 2x2 blocks: padding two text tokens changes the output,
    so the pooled branch applies the mask (ignoring it would make the two calls equal)."""
    model = tiny_chroma()
    masked, unmasked = _inputs("chroma", (16, 16)), _inputs("chroma", (16, 16), masked_text=0)
    with resdit.enabled(model, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
        resdit.set_step(model, 0, 35)  # global-only phase, on 2x2 blocks
        a, b = _forward(model, masked), _forward(model, unmasked)
    assert not torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("family", ("chroma", "flux2", "qwenimage", "zimage"))
def test_resdit_generate_loads_a_saved_pipeline_of_the_family(family, tmp_path, capsys):
    """The command line's path: the family read from model_index.json without loading, the stock diffusers pipeline
    loaded from the folder, ResDiT applied, a 1:2 image written."""
    from PIL import Image

    from resdit.cli import main

    folder = tmp_path / family
    _pipe(family).save_pretrained(folder)
    out = tmp_path / "img.png"
    b = BASE[family]
    code = main(["generate", "--model", str(folder), "--base-size", f"{b}x{b}", "--prompt", PROMPT, "--height",
                 str(b), "--width", str(2 * b), "--steps", "2", "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(capsys.readouterr().out)
    assert record["mode"] == "resdit" and record["size"] == [b, 2 * b]
    image = Image.open(out)
    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert image.size == (2 * b, b) and len(colours) > 10  # not a constant (black) image


# ------------------------------------------------------------------------------------------------ what users combine
def _lora_folder(family, tmp_path):
    """A LoRA on every attention projection of the family's transformer, random (non-zero) weights, saved by the
    pipeline class's own ``save_lora_weights``."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = _pipe(family)
    torch.manual_seed(1)
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                            target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = tmp_path / "lora"
    type(pipe).save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
    return folder


@pytest.mark.parametrize("family", ROPE_FAMILIES)
def test_a_lora_loaded_the_diffusers_way_runs_inside_the_branches(family, tmp_path):
    """``pipe.load_lora_weights``: at the base size ResDiT is the LoRA pipeline bit for bit; at 2x the LoRA changes
    ResDiT's image (its layers run inside the branches); removing ResDiT keeps the adapter."""
    folder = _lora_folder(family, tmp_path)
    pipe = _pipe(family)
    cfg, b = _cfg(family, "resdit"), BASE[family]
    plain = resdit.generate(pipe, PROMPT, cfg, 2 * b, 2 * b, 2)
    pipe.load_lora_weights(folder)
    stock = _call(pipe, b, b)
    with resdit.enabled(pipe, cfg):
        _same(_call(pipe, b, b), stock, family)
    with_lora = resdit.generate(pipe, PROMPT, cfg, 2 * b, 2 * b, 2)
    assert not torch.allclose(with_lora, plain, atol=1e-4)
    assert torch.equal(_call(pipe, b, b), stock) and pipe.get_active_adapters()


@pytest.mark.parametrize("family", ROPE_FAMILIES)
def test_a_compiled_transformer_gives_the_eager_images(family):
    """``pipe.transformer = torch.compile(pipe.transformer)``: ResDiT installs on the module it wraps, and the compiled
    call (dynamo's graph capture; the "eager" backend keeps CI free of a C++ toolchain) equals the eager one."""
    pipe = _pipe(family)
    cfg, b = _cfg(family, "resdit"), BASE[family]
    eager = resdit.generate(pipe, PROMPT, cfg, 2 * b, b, 2)
    torch._dynamo.reset()
    pipe.transformer = torch.compile(pipe.transformer, backend="eager")
    compiled = resdit.generate(pipe, PROMPT, cfg, 2 * b, b, 2)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    assert resdit.get_state(pipe) is None  # removed again from the wrapped module


@pytest.mark.parametrize("family", ROPE_FAMILIES)
def test_model_cpu_offload_gives_the_same_images(family):
    pipe = _pipe(family)
    cfg, b = _cfg(family, "resdit"), BASE[family]
    direct = resdit.generate(pipe, PROMPT, cfg, 2 * b, b, 2)
    pipe.enable_model_cpu_offload(device="cpu")
    torch.testing.assert_close(resdit.generate(pipe, PROMPT, cfg, 2 * b, b, 2), direct, atol=1e-6, rtol=1e-6)


def test_a_qwen_image_controlnet_is_the_stock_pipeline_at_the_base_size_and_shares_the_plan_beyond():
    """QwenImageControlNetPipeline: the ControlNet gets ResDiT's processors, positions and phases like the
    transformer (the same plan at 2x x 1x); at the base size every mode is the stock pipeline."""
    from resdit.processors import ResDiTAttnProcessor

    pipe = tiny_qwenimage_controlnet_pipeline()

    def call(h, w):
        control = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
        return pipe(prompt=PROMPT, control_image=control, height=h, width=w, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images

    stock = call(64, 64)
    for mode in ("resdit", "scaled_pe", "dype"):
        with resdit.enabled(pipe, _cfg("qwenimage", mode)):
            assert torch.equal(call(64, 64), stock), mode
    with resdit.enabled(pipe, _cfg("qwenimage", "resdit")) as state:
        assert all(isinstance(p, ResDiTAttnProcessor) for p in pipe.controlnet.attn_processors.values())
        out = call(128, 64)
        control = resdit.get_state(pipe.controlnet)
        assert control.plan.grid == state.plan.grid == (16, 8)
        assert torch.equal(control.plan.global_rope[0], state.plan.global_rope[0])
    assert out.shape == (1, 3, 128, 64) and out.isfinite().all()
    assert not any(isinstance(p, ResDiTAttnProcessor) for p in pipe.controlnet.attn_processors.values())


def test_a_z_image_controlnet_is_the_stock_pipeline_at_the_base_size_and_its_shared_refiner_runs_each_steps_phase(
        monkeypatch):
    """ZImageControlNetPipeline: the ControlNet shares the transformer's image refiner and runs before it in every
    step; its own layers get ResDiT's processors, the shared ones keep the transformer's, and every attention call of
    a step runs that step's phase (the ControlNet's pre-hook prepares the transformer's state too)."""
    import resdit.processors as processors
    from resdit.processors import ResDiTAttnProcessor

    pipe = tiny_zimage_controlnet_pipeline()

    def call(h, w, steps=2, scale=0.75):
        control = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
        return pipe(prompt=PROMPT, control_image=control, height=h, width=w, num_inference_steps=steps,
                    controlnet_conditioning_scale=scale, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images

    b = BASE["zimage"]
    stock = call(b, b)
    assert not torch.allclose(call(b, b, scale=0.0), stock, atol=1e-3)  # the control branch does something
    for mode in ("resdit", "scaled_pe", "dype"):
        with resdit.enabled(pipe, _cfg("zimage", mode)):
            torch.testing.assert_close(call(b, b), stock, atol=EXACT["zimage"], rtol=0)  # the grid reordered
    phases, original = [], ResDiTAttnProcessor.run

    def spy(self, *args, **kwargs):
        phases.append((self.state.step, self.state.phase))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(processors.ResDiTAttnProcessor, "run", spy)
    cfg = _cfg("zimage", "resdit", global_steps=1, local_steps=1)
    with resdit.enabled(pipe, cfg) as state:
        refiner = pipe.controlnet.noise_refiner[0].attention.processor
        assert isinstance(refiner, ResDiTAttnProcessor) and refiner.state is state  # shared: the transformer's
        own = pipe.controlnet.control_layers[0].attention.processor
        assert isinstance(own, ResDiTAttnProcessor) and own.state is resdit.get_state(pipe.controlnet)
        out = call(2 * b, b, steps=3)
    assert out.shape == (1, 3, 2 * b, b) and out.isfinite().all()
    by_step = {}
    for step, phase in phases:
        by_step.setdefault(step, set()).add(phase)
    assert [by_step[s] for s in sorted(by_step)] == [{"global"}, {"fused"}, {"local"}]
    assert not any(isinstance(m.processor, ResDiTAttnProcessor) for m in pipe.controlnet.modules()
                   if hasattr(m, "processor"))

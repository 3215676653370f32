"""ipywidgets for the notebooks. All logic lives here; notebooks only build and display them.

* :class:`AttentionExplorer`: pick layer, head, step, branch and probe; see the probe's attention
  map over the image and entropy/distance per layer. Works from a saved cache, no model.
* :class:`GenerationExplorer`: sliders for cutoff, splice width, phase lengths and scale; regenerates
  with ResDiT and shows the image beside direct and scaled-PE references and the per-window
  spectra of the global, local and fused branches.

Each keeps the data of its last render in ``.last`` so tests can drive the callbacks. Output goes
into the widget's ``outputs`` directly (``append_display_data``), not through ``with output:``
capture, which headless runners (papermill/nbclient) route through a message hook that can stall.
"""

from __future__ import annotations


from . import plots


def _widgets():
    import ipywidgets

    return ipywidgets


class AttentionExplorer:
    """Browse an :class:`~resdit.record.AttentionCache` (recorded with ``probs`` and, for the
    curves, ``entropy``/``distance``)."""

    def __init__(self, cache, image=None):
        w = _widgets()
        self.cache, self.image = cache, image
        probs_keys = [k for k in cache.entries if k[0].endswith(".probs")]
        if not probs_keys:
            raise ValueError("The cache holds no attention probabilities: record with points=['probs'] and probes.")
        layer_names = sorted({k[0].rsplit(".", 1)[0] for k in probs_keys}, key=cache.layers.index)
        steps = sorted({k[1] for k in probs_keys})
        branches = sorted({k[3] for k in probs_keys})
        heads = next(iter(cache.entries[k] for k in probs_keys)).shape[1]
        self.controls = {
            "layer": w.Dropdown(options=[(n, cache.layers.index(n)) for n in layer_names], description="layer"),
            "head": w.IntSlider(min=0, max=heads - 1, description="head"),
            "step": w.SelectionSlider(options=steps, description="step"),
            "branch": w.ToggleButtons(options=branches, description="branch"),
            "probe": w.Dropdown(options=[(plots.probe_label(p), i) for i, p in enumerate(cache.meta["probes"])],
                                value=0, description="probe at"),
            "curve": w.ToggleButtons(options=["entropy", "distance"], description="curve"),
        }
        self.output = w.Output()
        for c in self.controls.values():
            c.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())[:3]), w.HBox(list(self.controls.values())[3:]),
                              self.output])
        self.last: dict = {}
        self.update()

    def update(self) -> None:
        v = {k: c.value for k, c in self.controls.items()}
        self.output.outputs = ()
        try:
            fig, amap = plots.attention_map_figure(self.cache, v["layer"], v["step"], v["branch"], v["head"],
                                                   v["probe"], self.image)
        except KeyError as err:  # e.g. a local branch at a global-only step
            self.output.append_stdout(f"Nothing recorded for this choice: {err}\n")
            self.last = {**v, "map": None}
            return
        _show(self.output, fig)
        curves = None
        if any(k[0].endswith("." + v["curve"]) for k in self.cache.entries):
            cfig, curves = plots.layer_curves(self.cache, v["curve"], v["step"], v["branch"])
            _show(self.output, cfig)
        self.last = {**v, "map": amap, "curve_values": curves}


class GenerationExplorer:
    """Regenerate one prompt with ResDiT, direct and scaled PE as the sliders move: the toy pipeline's (it draws in
    seconds on a CPU; its noise is pixel noise at its own base size). For a diffusers pipeline, loop
    :func:`resdit.generate` over the settings instead.

    The phase sliders keep ``global + local <= steps`` (moving one caps the other); while it generates the button
    is disabled and says so. ``render=True`` draws the defaults once at construction.
    """

    def __init__(self, pipe, prompt: str, steps: int = 20, seed: int = 0, scales=(1.5, 2.0, 3.0, 4.0), mu="base",
                 render: bool = True):
        from .config import ResDiTConfig
        from .schedule import phase_lengths

        if not (hasattr(pipe, "card") and hasattr(pipe, "base_size")):
            raise TypeError(f"GenerationExplorer drives the toy pipeline (resdit.toy.load_pipeline()), not "
                            f"{type(pipe).__name__}: it seeds pixel noise at the toy's base size. For another "
                            "pipeline, call resdit.generate(pipe, prompt, cfg, height, width) for each setting.")
        w = _widgets()
        self.pipe, self.prompt, self.steps, self.seed, self.mu = pipe, prompt, steps, seed, mu
        default = ResDiTConfig(mode="resdit")  # the sliders start at resdit's own defaults
        g, _, loc = phase_lengths(steps, default.global_steps, default.local_steps, default.local_fraction)
        self.controls = {
            "scale": w.SelectionSlider(options=list(scales), value=2.0 if 2.0 in scales else scales[0],
                                       description="scale"),
            "cutoff": w.FloatSlider(value=default.cutoff, min=0.0, max=1.41, step=0.05, description="cutoff"),
            "splice_width": w.FloatSlider(value=default.splice_width, min=0.05, max=1.0, step=0.05,
                                          description="splice width"),
            "global_steps": w.IntSlider(value=g, min=0, max=steps, description="global steps"),
            "local_steps": w.IntSlider(value=loc, min=0, max=steps, description="local steps"),
            "proportional_attention": w.Checkbox(value=default.uses_proportional_attention,
                                                 description="proportional attention"),
        }
        glob, local = self.controls["global_steps"], self.controls["local_steps"]
        local.max = steps - glob.value
        glob.max = steps - local.value
        glob.observe(lambda change: setattr(local, "max", steps - change["new"]), names="value")
        local.observe(lambda change: setattr(glob, "max", steps - change["new"]), names="value")
        self.button = w.Button(description="generate")
        self.button.on_click(lambda _: self.update())
        self.output = w.Output()
        self.widget = w.VBox([w.HBox(list(self.controls.values())[:3]), w.HBox(list(self.controls.values())[3:]),
                              self.button, self.output])
        self.last: dict = {}
        if render:
            self.update()

    def update(self) -> None:
        """Generate with the sliders' values; the button is disabled and relabelled while it runs."""
        label = self.button.description
        self.button.disabled, self.button.description = True, "generating..."
        try:
            self._generate()
        finally:
            self.button.disabled, self.button.description = False, label

    def _generate(self) -> None:
        import torch

        from .apply import enabled
        from .config import ResDiTConfig, ResDiTConfigError
        from .generate import generate
        from .record import record

        v = {k: c.value for k, c in self.controls.items()}
        base = tuple(self.pipe.base_size)
        h, w = (2 * int(round(s * v["scale"] / 2)) for s in base)
        noise = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(self.seed))
        self.output.outputs = ()
        try:
            cfg = ResDiTConfig(base_size=base, mode="resdit", cutoff=v["cutoff"], splice_width=v["splice_width"],
                               global_steps=v["global_steps"], local_steps=v["local_steps"],
                               proportional_attention=v["proportional_attention"], mu=self.mu)
            images, titles = [], []
            for mode in ("direct", "scaled_pe"):
                ref = ResDiTConfig(base_size=base, mode=mode, mu=self.mu)  # the references as their names say
                images.append(generate(self.pipe, self.prompt, ref, h, w, self.steps, latents=noise)[0])
                titles.append(mode)
            fused_step = min(v["global_steps"], self.steps - 1)
            with enabled(self.pipe, cfg), record(self.pipe, points=["spectrum"], layers=[-1],
                                                 steps=[fused_step]) as cache:
                image = self.pipe(self.prompt, height=h, width=w, num_inference_steps=self.steps, latents=noise,
                                  output_type="pt").images[0]
        except ResDiTConfigError as err:
            self.output.append_stdout(f"error: {err}\n")
            self.last = {**v, "error": str(err)}
            return
        images.append(image)
        titles.append(f"resdit (cutoff {v['cutoff']:.2f}, splice width {v['splice_width']:.2f})")
        _show(self.output, plots.image_grid(images, titles))
        spectra = {b: cache.get("spectrum", -1, step=fused_step, branch=b).numpy()
                   for b in ("global", "local", "fused") if any(k[3] == b for k in cache.entries)}
        if spectra:
            _show(self.output, plots.spectra_figure(spectra))
        self.last = {**v, "size": (h, w), "image": image.numpy(), "spectra": spectra}


def _show(output, fig) -> None:
    """Put a figure into an Output widget and close it (no pyplot state left behind)."""
    import matplotlib.pyplot as plt

    output.append_display_data(fig)
    plt.close(fig)

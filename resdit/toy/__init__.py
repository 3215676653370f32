"""The toy world: procedural scenes at any size, a small FLUX-architecture model trained on
them up to a base size, and a FLUX-style pipeline to sample it."""

from .world import PromptError, Scene, SceneObject, detect, parse_prompt, prompt_correct, random_scene, render

__all__ = ["PromptError", "Scene", "SceneObject", "ToyFluxPipeline", "detect", "load_pipeline", "parse_prompt",
           "prompt_correct", "random_scene", "render"]


def __getattr__(name: str):
    # The pipeline needs torch and diffusers; the world (prompts, renderer) needs only numpy.
    if name in ("ToyFluxPipeline", "load_pipeline"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'resdit.toy' has no attribute {name!r}")

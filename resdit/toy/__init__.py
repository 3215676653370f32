"""The toy world: procedural scenes at any size, a small FLUX-architecture model trained on
them up to a base size, and a FLUX-style pipeline to sample it."""

from .pipeline import ToyFluxPipeline, load_pipeline
from .world import PromptError, Scene, SceneObject, detect, parse_prompt, prompt_correct, random_scene, render

__all__ = ["PromptError", "Scene", "SceneObject", "ToyFluxPipeline", "detect", "load_pipeline", "parse_prompt",
           "prompt_correct", "random_scene", "render"]

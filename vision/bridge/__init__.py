"""The caption-to-image bridge: a prompt writer, image and video generators, jobs and provenance.

>>> from vision.bridge import plan_imagine
>>> plan = plan_imagine("a lighthouse at dawn", style="watercolour",
...                     image_model="replicate/black-forest-labs/flux-schnell")
>>> plan.image_prompt.prompt.startswith("a lighthouse at dawn, loose watercolour painting")
True
"""

from __future__ import annotations

from .generators import GenerationRequest, Generator, RemoteJob, StartImage, get_generator
from .jobs import Job, JobRunner, JobStore
from .pipeline import Generation, ImaginePlan, imagine, plan_imagine
from .provenance import read_index, read_provenance
from .writer import PromptWriter, Source, WrittenPrompt, read_headlines

__all__ = [
    "Generation",
    "GenerationRequest",
    "Generator",
    "ImaginePlan",
    "Job",
    "JobRunner",
    "JobStore",
    "PromptWriter",
    "RemoteJob",
    "Source",
    "StartImage",
    "WrittenPrompt",
    "get_generator",
    "imagine",
    "plan_imagine",
    "read_headlines",
    "read_index",
    "read_provenance",
]

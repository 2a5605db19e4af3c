"""Vision models hosted on Replicate (LLaVA, Moondream, Qwen-VL style inputs).

Models are named ``replicate/<owner>/<name>[:<version>]``. Each model names its inputs its own way
(``image`` or ``media``, ``max_tokens`` or ``max_new_tokens``...): the names come from the model
table's ``input_map``, never from code branches. These models take one prompt string, so a
conversation is sent as a transcript with the pinned image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ..encode import RequestPlan
from ..errors import BadResponseError, ProviderError
from .base import Answer, BaseVisionModel, Message, Options, Usage
from .replicate_api import ReplicateAPI, map_replicate_error

log = logging.getLogger(__name__)

DEFAULT_INPUT_MAP = {
    "image": "image",
    "prompt": "prompt",
    "system": "system_prompt",
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "seed": "seed",
}


class ReplicateModel(BaseVisionModel):
    provider_kind = "replicate"
    can_stream = True

    def __init__(self, *args: Any, poll_interval: float | None = None, wait: int | None = None,
                 **kwargs: Any) -> None:
        """``wait``: seconds the create request may block (``Prefer: wait``); 0 polls from the start;
        default: the timeout, at most 60."""
        super().__init__(*args, **kwargs)
        if self.model_id.count("/") != 1 or not all(self.model_id.split(":", 1)[0].split("/")):
            from ..errors import UnknownModelError

            raise UnknownModelError(self.name, "Replicate models are named replicate/<owner>/<name>[:<version>]")
        self.input_map = {**DEFAULT_INPUT_MAP, **self.facts.input_map}
        self._poll_interval = poll_interval
        self._wait = wait
        self._api: ReplicateAPI | None = None

    def load_client(self) -> None:
        import httpx  # noqa: F401
        import replicate  # noqa: F401

    def api(self) -> ReplicateAPI:
        if self._api is None:
            self._api = ReplicateAPI(self.preset, self.config, poll_interval=self._poll_interval)
        return self._api

    # -- request --------------------------------------------------------------------------------

    def build_input(self, messages: list[Message], plan: RequestPlan, options: Options) -> dict[str, Any]:
        m = self.input_map
        system = "\n\n".join(x.text for x in messages if x.role == "system")
        turns = [x for x in messages if x.role != "system"]
        if len(turns) == 1:
            prompt = turns[0].text
        else:
            prompt = "\n".join(f"{'User' if t.role == 'user' else 'Assistant'}: {t.text}" for t in turns)
            prompt += "\nAssistant:"
        if system and not m.get("system"):
            prompt = f"{system}\n\n{prompt}"
        payload: dict[str, Any] = {m["prompt"]: prompt}
        images = [self.encode(p) for t in turns for p in t.images]
        if images and m.get("image"):
            payload[m["image"]] = images[0].data_url
        if system and m.get("system"):
            payload[m["system"]] = system
        if m.get("max_tokens"):
            payload[m["max_tokens"]] = plan.max_output_tokens
        if options.temperature is not None and m.get("temperature"):
            payload[m["temperature"]] = options.temperature
        if options.seed is not None and m.get("seed"):
            payload[m["seed"]] = options.seed
        return payload

    # -- calls ----------------------------------------------------------------------------------

    def _run(self, messages: list[Message], plan: RequestPlan, options: Options, *, stream: bool) -> Any:
        timeout = options.timeout or self.config.settings.timeout
        wait = self._wait if self._wait is not None else max(1, min(60, int(timeout)))
        return self.api().create_prediction(self.model_id, self.build_input(messages, plan, options),
                                            model_label=self.model_id, wait=wait, stream=stream)

    def _complete(self, messages: list[Message], plan: RequestPlan, options: Options) -> Answer:
        api = self.api()  # outside any mapping: a missing key is a configuration error
        prediction = self._run(messages, plan, options, stream=False)
        timeout = options.timeout or self.config.settings.timeout
        api.wait(prediction, model_label=self.model_id, timeout=timeout)
        api.raise_for_failure(prediction, model_label=self.model_id)
        return self._answer(prediction, _output_text(prediction.output, self.name))

    def _stream(self, messages: list[Message], plan: RequestPlan, options: Options,
                final: dict[str, Answer]) -> Iterator[str]:
        from replicate.stream import ServerSentEvent

        api = self.api()
        prediction = self._run(messages, plan, options, stream=True)
        urls = prediction.urls or {}
        if prediction.status in {"failed", "canceled"} or not urls.get("stream"):
            timeout = options.timeout or self.config.settings.timeout
            api.wait(prediction, model_label=self.model_id, timeout=timeout)
            api.raise_for_failure(prediction, model_label=self.model_id)
            text = _output_text(prediction.output, self.name)
            yield text
            final["answer"] = self._answer(prediction, text)
            return
        got_text = False
        try:
            for event in prediction.stream():
                if event.event == ServerSentEvent.EventType.DONE:
                    break
                if event.event == ServerSentEvent.EventType.OUTPUT and event.data:
                    got_text = True
                    yield str(event.data)
        except RuntimeError as exc:  # replicate-python raises RuntimeError for an `error` event
            raise api.failure(prediction, str(exc) or "the model reported an error",
                              model_label=self.model_id) from exc
        except ProviderError:
            raise
        except Exception as exc:
            raise map_replicate_error(exc, provider=self.provider, model=self.model_id) from exc
        api.call(prediction.reload, model_label=self.model_id)
        if prediction.status not in {"succeeded", "processing", "starting"}:
            api.raise_for_failure(prediction, model_label=self.model_id)
        if not got_text:
            raise BadResponseError("the stream ended without any output", provider=self.provider,
                                   model=self.model_id)
        final["answer"] = self._answer(prediction, "")

    def _answer(self, prediction: Any, text: str) -> Answer:
        metrics = prediction.metrics or {}
        usage = Usage(
            input_tokens=int(metrics.get("input_token_count") or 0),
            output_tokens=int(metrics.get("output_token_count") or 0),
            seconds=float(metrics["predict_time"]) if metrics.get("predict_time") is not None else None,
        )
        raw = prediction.dict() if hasattr(prediction, "dict") else prediction
        return Answer(text=text, model=self.name, usage=usage, raw=raw, request_id=prediction.id,
                      finish_reason=prediction.status)


def _output_text(output: Any, model: str) -> str:
    if isinstance(output, list):
        text = "".join(str(x) for x in output)
    elif isinstance(output, str):
        text = output
    elif isinstance(output, dict):
        text = str(output.get("text") or output.get("output") or output.get("answer") or "")
    else:
        text = ""
    if not text.strip():
        provider, _, name = model.partition("/")
        raise BadResponseError("the prediction succeeded with an empty output", provider=provider, model=name)
    return text

"""Handlers of GET THANOSQL MODEL, UPLOAD MODEL and DELETE MODEL: they fill and empty the
workspace's model store (models/store.py) and return None ("Success").

GET takes a catalog name (models/catalog.py) and resolves its weights (models/weights.py); UPLOAD
registers a local open_clip checkpoint, or a PyTorch image encoder (models/pytorch.py). Both load
the weights before storing, so a checkpoint that does not fit its architecture is refused here,
not at the first CONVERT.
"""

from __future__ import annotations

import json
import urllib.parse

from ..errors import ModelError, PlanError, choices_hint
from ..models.catalog import CATALOG, get_prebuilt
from ..options import PYTORCH_INPUT_SIZE


def get_model(session, step) -> None:
    """GET THANOSQL MODEL name [OPTIONS (model_name, overwrite, arch, pretrained, checkpoint)]."""
    from ..models.clip import build_open_clip, store_clip_model, tag_preprocess_cfg

    node, options, spans = step.statement, step.options, step.spans
    entry = get_prebuilt(node.name)
    if entry is None:
        raise ModelError(
            f"there is no pre-built model '{node.name}'",
            span=node.span,
            hint=choices_hint(node.name, list(CATALOG), "pre-built models") + " (LIST THANOSQL MODEL shows them)",
        )
    name = options.get("model_name") or entry.name
    store = session.models
    # Refuse before a download, not after it.
    store.check_writable(name, overwrite=options["overwrite"], span=spans.get("model_name", node.span))
    arch, tag, config, resolved = _find_weights(session, step, entry)
    model, _, _ = build_open_clip(
        arch, config, "cpu", checkpoint=resolved.path, preprocess_cfg=tag_preprocess_cfg(arch, tag)
    )
    store_clip_model(
        store,
        name,
        model,
        arch=arch,
        config=config,
        pretrained=tag,
        source=f"GET THANOSQL MODEL {entry.name} ({resolved.origin}: {resolved.detail})",
        overwrite=options["overwrite"],
        span=node.span,
    )
    weights = f"'{tag}' weights" if tag else "weights"
    session.notify(f"model '{name}': open_clip {arch} with {weights}, from the {resolved.origin}")
    return None


def _find_weights(session, step, entry):
    """``(arch, tag, config, Resolved)`` for GET (models/clip_weights.py): the architecture, its
    weight tag (the statement's, else the default for it) and a checkpoint of the user's (a path
    or URL)."""
    from ..models.clip import model_config
    from ..models.clip_weights import default_tag, resolve_clip_weights

    node, options, spans = step.statement, step.options, step.spans
    arch = options.get("arch") or entry.arch
    arch_span = spans.get("arch", node.span)
    model_config(arch, span=arch_span)  # an unknown arch is named before its weights are looked for
    checkpoint = options.get("checkpoint")
    if checkpoint is not None and not _is_url(checkpoint):
        written, checkpoint = checkpoint, session.resolve_path(checkpoint)
        if not checkpoint.is_file():
            raise ModelError(
                f"checkpoint file not found: {written}",
                span=spans.get("checkpoint", node.span),
                hint="relative paths start at the workspace folder",
            )
    tag = options.get("pretrained") or default_tag(arch, entry)
    weights = resolve_clip_weights(
        arch,
        tag,
        checkpoint=checkpoint,
        store=session.models,
        offline=session.settings.offline,
        progress=session.progress,
        span=spans.get("checkpoint", node.span),
        arch_span=arch_span,
        tag_span=spans.get("pretrained", arch_span),
        no_weights_hint="give OPTIONS (checkpoint='path/to/weights.pt') or another arch",
    )
    return weights.arch, weights.tag, weights.config, weights.resolved


def _is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in ("http", "https")


def upload_model(session, step) -> None:
    """UPLOAD MODEL name OPTIONS (framework='open_clip', arch=..., model_config=...) FROM 'file',
    or OPTIONS (framework='pytorch', input_size=224) for a plain image encoder."""
    from ..models.clip import build_open_clip, store_clip_model

    node, options, spans = step.statement, step.options, step.spans
    store = session.models
    store.check_writable(node.name, overwrite=options["overwrite"], span=node.span)
    checkpoint = session.resolve_path(node.path)
    if not checkpoint.is_file():
        raise ModelError(
            f"file not found: {node.path}",
            span=node.span,
            hint="relative paths start at the workspace folder",
        )
    if options["framework"] == "pytorch":
        return _upload_pytorch(session, step, checkpoint)
    if options.get("input_size") is not None:
        raise PlanError(
            "input_size applies to framework='pytorch' only; an open_clip config sets its image size",
            span=spans["input_size"],
        )
    arch, config = _upload_config(session, step)
    model, _, _ = build_open_clip(arch, config, "cpu", checkpoint=checkpoint)
    store_clip_model(
        store,
        node.name,
        model,
        arch=arch,
        config=config,
        source=f"UPLOAD MODEL from {node.path}",
        overwrite=options["overwrite"],
        span=node.span,
    )
    return None


def _upload_pytorch(session, step, path) -> None:
    from ..models.pytorch import store_pytorch_model

    node, options, spans = step.statement, step.options, step.spans
    for name in ("arch", "model_config"):
        if options.get(name) is not None:
            raise PlanError(f"{name} applies to framework='open_clip' only", span=spans[name])
    input_size = options.get("input_size") or PYTORCH_INPUT_SIZE
    store_pytorch_model(
        session.models,
        node.name,
        path,
        input_size=input_size,
        source=f"UPLOAD MODEL from {node.path}",
        overwrite=options["overwrite"],
        span=node.span,
    )
    return None


def _upload_config(session, step) -> tuple[str, dict]:
    from ..models.clip import model_config

    node, options, spans = step.statement, step.options, step.spans
    arch = options.get("arch")
    given = options.get("model_config")
    if given is None:
        if arch is None:
            raise PlanError(
                "UPLOAD MODEL needs the open_clip architecture of the checkpoint",
                span=node.span,
                hint="add arch='ViT-B-32' (a config open_clip ships) or model_config='path/to/<arch>.json'",
            )
        return arch, model_config(arch, span=spans.get("arch"))
    span = spans.get("model_config")
    path = session.resolve_path(given)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.stem
    if arch is not None and arch != stem:
        raise PlanError(
            f"arch '{arch}' does not match the model config's file name '{path.name}'",
            span=spans.get("arch", span),
            hint=f"open_clip names an architecture after its config file: use arch='{stem}' or leave arch out",
        )
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(
            f"model config not found: {given}", span=span, hint="relative paths start at the workspace folder"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the model config {given}: {exc}", span=span) from exc
    if not isinstance(config, dict):
        raise ModelError(f"the model config {given} is not a JSON object", span=span)
    # open_clip's Hugging Face configs wrap the model config with its preprocessing.
    config = config.get("model_cfg", config)
    return stem, model_config(stem, config, span=span)


def delete_model(session, step) -> None:
    """DELETE MODEL name: remove it from the store and from the session's loaded models."""
    node = step.statement
    session.models.delete(node.name, span=node.span)
    session.caches.models.forget(node.name)
    session.reuse.drop(node.name)
    return None

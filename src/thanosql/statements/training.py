"""Handlers of BUILD MODEL name USING SimCLR|CLIP OPTIONS (...) AS query and FIT MODEL new USING
existing OPTIONS (...) AS query: read the query's image paths (and captions), train, and write the
model into the store in one atomic step, so an interrupt or a failure leaves any earlier model of
that name as it was. They return None ("Success") after a one-line summary of the training.
"""

from __future__ import annotations

from pathlib import Path

from ..engines import engine_of
from ..errors import DatasetError, ModelError, PlanError, choices_hint
from ..options import CLIP_TRAINING, SIMCLR_TRAINING

# Options of BUILD MODEL that apply to one family only.
SIMCLR_ONLY = tuple(name for name in SIMCLR_TRAINING if name not in CLIP_TRAINING)
CLIP_ONLY = tuple(name for name in CLIP_TRAINING if name not in SIMCLR_TRAINING)
PRETRAINED_FILE_ENDINGS = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def build_model(session, step) -> None:
    """BUILD MODEL name USING SimCLR|CLIP [OPTIONS (...)] AS query."""
    node, options = step.statement, step.options
    # Refuse an existing name before reading a single image, not after minutes of training.
    session.models.check_writable(node.name, overwrite=options["overwrite"], span=node.span)
    if node.algorithm.lower() == "simclr":
        return _build_simclr(session, step)
    return _build_clip(session, step)


def fit_model(session, step) -> None:
    """FIT MODEL new USING existing [OPTIONS (...)] AS query: continue training ``existing`` on
    the query's rows and store the result as ``new`` (which may be ``existing``, with overwrite)."""
    node, options = step.statement, step.options
    info = session.models.get(node.base_model, span=node.span)
    if node.name == node.base_model and not options["overwrite"]:
        raise ModelError(
            f"FIT MODEL {node.name} USING {node.base_model} would replace model '{node.base_model}'",
            span=node.span,
            hint="add OPTIONS (overwrite=True) to train it further in place, or give the new model another name",
        )
    session.models.check_writable(node.name, overwrite=options["overwrite"], span=node.span)
    if info.family == "simclr":
        return _fit_simclr(session, step, info)
    if info.family == "clip":
        return _fit_clip(session, step, info)
    raise ModelError(
        f"model '{info.name}' ({info.family}) cannot be trained further here",
        span=node.span,
        hint="FIT MODEL continues SimCLR and CLIP models (made by BUILD MODEL, GET or UPLOAD)",
    )


def _check_room(session, parameters: int, node) -> None:
    """Fail before training, not after it, when the model's file would not fit on the disk."""
    from ..disk import check_free_space

    needed = int(parameters * 4 * 1.25) + (1 << 20)
    check_free_space(session.model_dir, needed, f"saving model '{node.name}'", span=node.span)


# -- SimCLR -------------------------------------------------------------------------------------


def _build_simclr(session, step) -> None:
    from ..models import simclr

    node, options, spans = step.statement, step.options, step.spans
    paths = _image_paths(session, step, options["image_col"])
    survey = simclr.survey_images([session.resolve_path(path) for path in paths])
    config = simclr.build_config(options, survey, len(paths), lambda name: spans.get(name, node.span))
    backbone = None
    if options["pretrained"]:
        # Found (or refused) before the images are read: offline, the error comes at once.
        weights = _imagenet_weights(session, options["pretrained"], spans.get("pretrained", node.span))
        backbone = simclr.build_backbone("imagenet")
        simclr.load_imagenet_weights(backbone, weights)
    _train_simclr(session, step, paths, config, backbone, None, f"BUILD MODEL USING SimCLR AS {step.source}", {})
    return None


def _fit_simclr(session, step, info) -> None:
    from ..models import simclr

    options = step.options
    _refuse(step, CLIP_ONLY, "a SimCLR model")
    _keep_architecture(step, info, simclr.ARCHITECTURE_OPTIONS)
    backbone, head, stored = simclr.read_simclr_model(info)
    config = simclr.fit_config(stored, options)
    paths = _image_paths(session, step, options["image_col"])
    source = f"FIT MODEL USING {info.name} AS {step.source}"
    _train_simclr(session, step, paths, config, backbone, head, source, {"fitted_from": info.name})
    return None


def _train_simclr(session, step, paths, config, backbone, head, source: str, extra: dict) -> None:
    """Train SimCLR ``config`` on ``paths`` (from ``backbone``/``head`` where given), store the model
    as the statement names it, and print the summary: what BUILD and FIT MODEL share."""
    from ..models import resolve_device, simclr

    node, options = step.statement, step.options
    if engine_of(session, options) == "ray":
        from ..ray_training import train_simclr_on_ray

        _check_room(session, simclr.PARAMETERS, node)
        backbone, head, report = _training_images(
            session,
            step,
            paths,
            lambda paths: train_simclr_on_ray(session, paths, config, backbone, head, options["num_workers"]),
        )
    else:
        dataset = _training_images(
            session, step, paths, lambda paths: simclr.TrainingImages(paths, config, session.progress)
        )
        _check_room(session, simclr.PARAMETERS, node)
        backbone, head, report = simclr.train(
            dataset,
            config,
            device=resolve_device(session.settings.device),
            backbone=backbone,
            head=head,
            num_workers=options["num_workers"],
            progress=session.progress,
        )
    simclr.store_simclr_model(
        session.models,
        node.name,
        backbone,
        head,
        config,
        source=source,
        overwrite=options["overwrite"],
        span=node.span,
        extra_options=extra,
    )
    session.notify(_simclr_summary(node.name, config, len(paths), report))


def _imagenet_weights(session, pretrained, span) -> Path:
    from ..models import simclr

    if pretrained is True:
        return simclr.resolve_imagenet_weights(offline=session.settings.offline, progress=session.progress, span=span)
    path = session.resolve_path(pretrained)
    if not path.is_file():
        raise ModelError(
            f"pretrained weights file not found: {pretrained}",
            span=span,
            hint="relative paths start at the workspace folder; pretrained=True uses torchvision's "
            "ResNet-18 ImageNet weights",
        )
    return path


def _simclr_summary(name, config, count, report) -> str:
    return (
        f"model '{name}': SimCLR ResNet-18 ({config.stem} stem, {config.input_size} px, {config.color}) "
        f"trained on {count:,} images for {_epochs(report.epochs)} ({report.steps:,} steps of "
        f"{config.batch_size}), loss {report.last_loss:.3f} (mean of the last epoch), in {report.seconds:.0f} s"
    )


# -- CLIP ---------------------------------------------------------------------------------------


def _build_clip(session, step) -> None:
    from ..models import clip, clip_training

    node, options = step.statement, step.options
    paths, texts = _image_caption_pairs(session, step, options["image_col"], options["text_col"])
    pretrained = options["pretrained"]
    tag = None
    if pretrained is None or pretrained is False:
        arch, config, model, tokenizer = clip_training.new_clip_model(options["arch"], seed=options["seed"])
    else:
        arch, tag, config, weights = _clip_weights(session, step)
        model, _, tokenizer = clip.build_open_clip(
            arch, config, "cpu", checkpoint=weights, preprocess_cfg=clip.tag_preprocess_cfg(arch, tag)
        )
    settings = clip_training.build_config(options, published=tag is not None or bool(pretrained))
    _check_room(session, sum(p.numel() for p in model.parameters()), node)
    model, report = _train_clip(
        session, step, model, tokenizer, paths, texts, settings, options, arch=arch, config=config
    )
    origin = {"fine_tuned_from": tag or str(pretrained)} if pretrained not in (None, False) else {}
    # pretrained=None in the store: the weights are no longer the published ones, and GET must
    # never take them for those (weights.resolve_weights looks for stored models by tag).
    clip.store_clip_model(
        session.models,
        node.name,
        model,
        arch=arch,
        config=config,
        pretrained=None,
        source=f"BUILD MODEL USING CLIP AS {step.source}",
        overwrite=options["overwrite"],
        extra_options={"training": settings.to_options(), **origin},
        span=node.span,
    )
    session.notify(_clip_summary(node.name, arch, len(paths), report, settings))
    return None


def _fit_clip(session, step, info) -> None:
    from ..models import clip, clip_training

    node, options = step.statement, step.options
    _refuse(step, SIMCLR_ONLY, "a CLIP model")
    _keep_architecture(step, info, clip_training.ARCHITECTURE_OPTIONS)
    paths, texts = _image_caption_pairs(session, step, options["image_col"], options["text_col"])
    model, _, tokenizer, config = clip.read_clip_model(info, "cpu")
    settings = clip_training.fit_config(info.options, options)
    _check_room(session, sum(p.numel() for p in model.parameters()), node)
    model, report = _train_clip(
        session, step, model, tokenizer, paths, texts, settings, options, arch=info.arch, config=config
    )
    extra = {"training": settings.to_options(), "fitted_from": info.name}
    origin = clip_training.published_origin(info.options)
    if origin:
        extra["fine_tuned_from"] = origin
    clip.store_clip_model(
        session.models,
        node.name,
        model,
        arch=info.arch,
        config=config,
        pretrained=None,
        source=f"FIT MODEL USING {info.name} AS {step.source}",
        overwrite=options["overwrite"],
        extra_options=extra,
        span=node.span,
    )
    session.notify(_clip_summary(node.name, info.arch, len(paths), report, settings))
    return None


def _train_clip(session, step, model, tokenizer, paths, texts, settings, options, *, arch, config):
    """Train ``model`` (open_clip ``arch`` built from ``config``) here or on Ray: ``(model, report)``."""
    from ..models import clip_training, resolve_device

    if engine_of(session, options) == "ray":
        from ..ray_training import train_clip_on_ray

        return _training_images(
            session,
            step,
            paths,
            lambda paths: train_clip_on_ray(
                session, model, arch, config, paths, texts, settings, options["num_workers"]
            ),
        )
    preprocess = clip_training.training_preprocess(model)
    side = clip_training.input_side(model)
    dataset = _training_images(
        session,
        step,
        paths,
        lambda paths: clip_training.CaptionedImages(
            paths, texts, preprocess, tokenizer, input_size=side, progress=session.progress
        ),
    )
    device = resolve_device(session.settings.device)
    return clip_training.train_clip(
        model, dataset, settings, device=device, num_workers=options["num_workers"], progress=session.progress
    )


def _clip_weights(session, step):
    """``(arch, tag, config, weight file)`` of the weights BUILD MODEL ... USING CLIP fine-tunes:
    a file (of ``arch``, default the small one), or published weights: a tag, or True for the
    default weights of ``arch`` (models/clip_weights.py: for ViT-B-32, the 'openai' ones GET
    THANOSQL MODEL clip uses)."""
    from ..models import clip, clip_training
    from ..models.catalog import get_prebuilt
    from ..models.clip_weights import default_tag, resolve_clip_weights

    node, options, spans = step.statement, step.options, step.spans
    span = spans.get("pretrained", node.span)
    arch = options["arch"] or get_prebuilt("clip").arch
    pretrained = options["pretrained"]
    if isinstance(pretrained, str) and _looks_like_file(pretrained):
        # A weight file is of the architecture named, by default the small one BUILD trains.
        path = session.resolve_path(pretrained)
        if not path.is_file():
            raise ModelError(
                f"pretrained weights file not found: {pretrained}",
                span=span,
                hint="relative paths start at the workspace folder",
            )
        if options["arch"] is None:
            small = clip.model_config(clip_training.SMALL_ARCH, clip_training.SMALL_CONFIG)
            return clip_training.SMALL_ARCH, None, small, path
        return arch, None, clip.model_config(arch, span=spans.get("arch", node.span)), path
    tag = default_tag(arch) if pretrained is True else pretrained
    weights = resolve_clip_weights(
        arch,
        tag,
        store=session.models,
        offline=session.settings.offline,
        progress=session.progress,
        span=span,
        no_weights_hint="train it from scratch (leave pretrained out), or give pretrained='path/to/weights.pt'",
    )
    return weights.arch, weights.tag, weights.config, weights.path


def _looks_like_file(value: str) -> bool:
    return "/" in value or "\\" in value or value.lower().endswith(PRETRAINED_FILE_ENDINGS)


def _clip_summary(name, arch, count, report, settings) -> str:
    return (
        f"model '{name}': CLIP {arch} trained on {count:,} image-caption pairs for {_epochs(report.epochs)} "
        f"({report.steps:,} steps of {settings.batch_size}), loss {report.last_loss:.3f} (mean of the last epoch), "
        f"in {report.seconds:.0f} s"
    )


# -- shared -------------------------------------------------------------------------------------


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _refuse(step, names, what) -> None:
    node = step.statement
    for name in names:
        if name in step.given:
            raise PlanError(
                f"option '{name}' does not apply to {what}",
                span=step.spans.get(name, node.span),
                hint=f"model '{node.base_model}' is {what}; leave '{name}' out",
            )


def _keep_architecture(step, info, names) -> None:
    node, options = step.statement, step.options
    for name in names:
        stored = info.arch if name == "arch" else info.options.get(name)
        if name in step.given and options[name] != stored:
            raise PlanError(
                f"FIT MODEL keeps the {name} of model '{info.name}' ({stored!r}); it cannot become {options[name]!r}",
                span=step.spans.get(name, node.span),
                hint=f"leave '{name}' out, or BUILD MODEL a new model to change it",
            )


def _rows(session, step, columns: dict[str, str]):
    """The AS query's rows, after checking that they have ``columns`` (option -> column name): a
    PlanError listing the columns there are, with the nearest, for one that is missing."""
    node = step.statement
    rows = session.query(step.source, node)
    for option, column in columns.items():
        if column not in rows.column_names:
            raise PlanError(
                f"column '{column}' not found in the rows {_words(node)} reads",
                span=step.spans.get(option, node.span),
                hint=choices_hint(column, rows.column_names, "columns") + f" (set {option}=...)",
            )
    return rows


def _image_paths(session, step, column: str) -> list[str]:
    """Image paths of the AS query's rows as written (rows without one are left out, with a
    notice)."""
    rows = _rows(session, step, {"image_col": column})
    values = rows.column(column).to_pylist()
    kept = _strings(values, column, "image_col", step)
    _report_left_out(session, len(values) - len(kept), len(values), f"no {column}")
    _enough(len(kept), step.statement, "images")
    return [values[index] for index in kept]


def _image_caption_pairs(session, step, image_column: str, text_column: str) -> tuple[list[str], list[str]]:
    """Image paths as written and their captions, for the rows that have both."""
    rows = _rows(session, step, {"image_col": image_column, "text_col": text_column})
    images = rows.column(image_column).to_pylist()
    texts = rows.column(text_column).to_pylist()
    kept = [
        index
        for index in _strings(images, image_column, "image_col", step)
        if texts[index] is not None and str(texts[index]).strip()
    ]
    _report_left_out(session, len(images) - len(kept), len(images), f"no {image_column} or no {text_column}")
    _enough(len(kept), step.statement, "image-caption pairs")
    return [images[index] for index in kept], [str(texts[index]) for index in kept]


def _strings(values, column, option, step) -> list[int]:
    node = step.statement
    kept = []
    for index, value in enumerate(values):
        if value is None:
            continue
        if not isinstance(value, str):
            raise PlanError(
                f"column '{column}' holds {type(value).__name__} values, not image paths (row {index + 1}: {value!r})",
                span=step.spans.get(option, node.span),
            )
        kept.append(index)
    return kept


def _report_left_out(session, count: int, total: int, why: str) -> None:
    if count:
        session.notify(f"{count:,} of {total:,} rows have {why}; they were left out of training")


def _enough(count: int, node, what: str) -> None:
    if count < 2:
        raise PlanError(
            f"{_words(node)} needs at least 2 {what} to learn from, and the AS query gives {count}",
            span=node.span,
            hint="contrastive training compares each image with the others of its batch",
        )


def _training_images(session, step, written, make):
    """``make(paths)`` (a dataset that opens every image, or training on Ray, whose workers open
    them) on the absolute paths of ``written``, with an unreadable image reported as a DatasetError
    naming it as the table does."""
    from ..models.images import ImageReadError

    paths = [str(session.resolve_path(value)) for value in written]
    try:
        return make(paths)
    except ImageReadError as exc:
        raise DatasetError(
            f"cannot read image '{written[exc.index]}' (training image {exc.index + 1} of {len(paths)}): {exc.reason}",
            span=step.statement.span,
            hint="relative paths start at the workspace folder; leave the row out of the AS query "
            "(WHERE ...) to train without it",
        ) from exc


def _words(node) -> str:
    from .. import nodes

    if isinstance(node, nodes.FitModel):
        return "FIT MODEL"
    return f"BUILD MODEL ... USING {node.algorithm}"

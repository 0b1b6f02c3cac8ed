"""The CPU image tower with oneDNN-packed linear layers (thanosql.models.onednn): the same
embeddings as open_clip's own tower, the original left as it was, and CONVERT using it."""

from __future__ import annotations

import numpy as np
import pytest

from tiny_clip import tiny_config

torch = pytest.importorskip("torch")


def tiny_model(**overrides):
    from thanosql.models.clip import build_open_clip

    config = tiny_config()
    config.update(overrides)
    torch.manual_seed(0)
    model, _, _ = build_open_clip("tiny_clip", config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    return model.eval()


def packed(model):
    from thanosql.models import onednn

    if not onednn._packing_works():
        pytest.skip("this torch has no oneDNN packed linear layers")
    tower = onednn.packed_tower(model.visual, rows=4 * 5)
    assert tower is not None
    return tower


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_the_packed_tower_embeds_as_open_clips_tower_does(quick_gelu):
    model = tiny_model(quick_gelu=quick_gelu)
    tower = packed(model)
    images = torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model.encode_image(images)
        for batch in (images, images[:1], images[2:6]):  # batch sizes other than the hint too
            np.testing.assert_allclose(tower(batch).numpy(), model.encode_image(batch).numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(tower(images).numpy(), expected.numpy(), atol=1e-5, rtol=0)


def test_the_packed_tower_shares_everything_but_the_rewritten_layers_and_leaves_the_original_alone():
    model = tiny_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    tower = packed(model)
    assert tower.conv1.weight is model.visual.conv1.weight
    block = tower.transformer.resblocks[0]
    assert type(block.mlp.c_fc).__name__ == "PackedLinear"
    assert type(block.attn).__name__ == "PackedSelfAttention"
    original = model.visual.transformer.resblocks[0]
    assert isinstance(original.mlp.c_fc, torch.nn.Linear) and isinstance(original.attn, torch.nn.MultiheadAttention)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_a_tower_without_transformer_blocks_is_left_to_open_clip():
    from thanosql.models import onednn
    from thanosql.models.clip import build_open_clip

    model, _, _ = build_open_clip("RN50")
    assert onednn.packed_tower(model.visual, rows=32) is None


def test_convert_embeds_with_the_packed_tower_and_equals_the_unpacked_one(session, tmp_path):

    from thanosql.models import onednn
    from tiny_clip import make_images, save_tiny_checkpoint, upload_tiny

    if not onednn._packing_works():
        pytest.skip("this torch has no oneDNN packed linear layers")
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny", seed=2)
    upload_tiny(session, checkpoint)
    make_images(session.workspace / "pics", 9, seed=4)
    session.execute("CREATE TABLE pics AS SELECT 'pics/' || i || '.jpg' AS image_path FROM range(9) r(i)")
    adapter = session.model("tiny")
    fast = np.stack(session.execute("CONVERT USING tiny AS SELECT * FROM pics")["convert_result"])
    assert type(adapter._cpu_tower).__name__ == "VisionTransformer"  # the packed copy ran
    adapter.packed_tower = False
    plain = np.stack(session.execute("CONVERT USING tiny AS SELECT * FROM pics")["convert_result"])
    np.testing.assert_allclose(fast, plain, atol=1e-5, rtol=0)

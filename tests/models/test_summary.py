"""Layer tables: a row per call of each leaf module, and the input a model card is summarised at."""

from cnnkit.meta import ModelMeta
from cnnkit.models import create_model
from cnnkit.models.summary import card_input_shape, count_flops, count_params, layer_table
from tests.export.helpers import META, STATS


def test_a_module_called_several_times_has_each_calls_shape():
    net = create_model("unet_basic", num_classes=3, widths=[8, 12, 16, 20, 24], decoder_channels=[24, 20, 16, 12, 8])
    shape = (1, 3, 64, 64)
    rows = layer_table(net, shape, receptive=False)
    pools = [r.out_shape for r in rows if r.name == "encoder.pool"]  # one MaxPool2d, called after each stage
    assert pools == [(1, 8, 32, 32), (1, 12, 16, 16), (1, 16, 8, 8), (1, 20, 4, 4), (1, 24, 2, 2)]
    assert all(r.out_shape for r in rows if r.kind != "Identity")
    # each call its own FLOPs, each module's parameters once: the columns sum to the model's
    assert sum(r.flops for r in rows) == count_flops(net, shape)
    assert sum(r.params for r in rows) == count_params(net)


def test_a_cards_input_shape():
    card = ModelMeta.from_dict({**META["segment"], **STATS, "imgsz": 0, "crop": [40, 48], "in_chans": 1,
                              "mean": [0.4], "std": [0.2]})
    assert card_input_shape(card) == (1, 1, 40, 48)  # native size: the crop
    assert card_input_shape(card, imgsz=32, in_chans=3) == (1, 3, 32, 32)
    assert card_input_shape(card.replace(crop=())) == (1, 1, 224, 224)
    assert card_input_shape(card.replace(imgsz=64)) == (1, 1, 64, 64)  # the training size first

import numpy as np

from cnnkit.data.synthetic import SHAPE_NAMES, make_classification, make_scene


def test_scenes_are_deterministic_by_seed_and_index():
    a, b, c = make_scene(5, seed=1), make_scene(5, seed=1), make_scene(5, seed=2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.semantic, b.semantic)
    assert not np.array_equal(a.image, c.image)


def test_masks_agree_with_each_other():
    for i in range(20):
        s = make_scene(i, seed=0, size=48)
        assert s.image.shape == (48, 48, 3) and s.image.dtype == np.uint8
        assert len(s.instances) == len(s.instance_classes) >= 1
        overlap = s.instances.sum(0)
        assert overlap.max() <= 1  # visible parts never overlap
        rebuilt = np.zeros_like(s.semantic)
        for mask, cls in zip(s.instances, s.instance_classes):
            rebuilt[mask] = cls + 1
        assert np.array_equal(rebuilt, s.semantic)
        assert 0 <= s.label < len(SHAPE_NAMES)


def test_classification_labels_cover_all_classes():
    images, labels = make_classification(80, seed=0, size=32)
    assert images.shape == (80, 32, 32, 3)
    assert set(labels.tolist()) == set(range(len(SHAPE_NAMES)))

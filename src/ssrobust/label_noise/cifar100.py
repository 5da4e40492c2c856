"""CIFAR-100 class hierarchy as data: 100 fine classes grouped into 20 superclasses of 5.

Index order is the standard one of the dataset's ``meta`` file (and of torchvision): fine and
coarse names sorted alphabetically. ``COARSE_OF_FINE[i]`` is the superclass index of fine class
``i``; the table is derived from ``SUPERCLASS_MEMBERS`` (the grouping published with CIFAR-100,
Krizhevsky 2009) so the two can never disagree. Used by the ``hierarchical`` label corruption of
Hendrycks et al. (2018, GLC) that flips labels only within a superclass.
"""

from __future__ import annotations

from types import MappingProxyType

FINE_NAMES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
)

# Superclass name -> its five fine classes, as listed with the dataset.
SUPERCLASS_MEMBERS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
})

COARSE_NAMES: tuple[str, ...] = tuple(sorted(SUPERCLASS_MEMBERS))


def _coarse_of_fine() -> tuple[int, ...]:
    coarse_index = {name: i for i, name in enumerate(COARSE_NAMES)}
    of_name = {fine: coarse_index[coarse]
               for coarse, members in SUPERCLASS_MEMBERS.items() for fine in members}
    return tuple(of_name[fine] for fine in FINE_NAMES)


COARSE_OF_FINE: tuple[int, ...] = _coarse_of_fine()
"""Length-100 tuple: superclass index (0..19) of each fine class index (0..99)."""

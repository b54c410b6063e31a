"""Data: CIFAR-10 (real or stand-in), photos (Flowers-102, your own ImageFolder data,
generated stand-ins), transforms, loaders (DataLoaders, and the tensor-resident
:class:`TensorLoader` for speed)."""

from .cifar10 import CIFAR10_CLASSES, load_cifar10, prepare_cifar10_folder
from .folder import CheckedImageFolder, extract_archive, load_image_folder
from .loaders import (
    ClassSubset,
    class_subset,
    collate_images,
    default_num_workers,
    make_loader,
    split_indices,
    subset,
    train_val_split,
)
from .photos import (
    FLOWER_CLASSES,
    LAYOUT_CLASSES,
    PHOTO_SIZES,
    folder_from_labels,
    generate_photo_folder,
    load_flowers102,
    save_sideways,
)
from .standin import STANDIN_CLASSES, StandInCIFAR10, generate_standin
from .tensor_loader import (
    DecodedImages,
    TensorLoader,
    crop_flip,
    decode_images,
    draw_crop_flip,
    random_crop_flip,
)
from .transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    cifar10_eval_transform,
    cifar10_train_transform,
    denormalize,
    photo_eval_transform,
    photo_train_transform,
    transforms_from_weights,
)

__all__ = [
    "CIFAR10_CLASSES",
    "FLOWER_CLASSES",
    "LAYOUT_CLASSES",
    "PHOTO_SIZES",
    "folder_from_labels",
    "generate_photo_folder",
    "load_flowers102",
    "save_sideways",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STANDIN_CLASSES",
    "CheckedImageFolder",
    "ClassSubset",
    "DecodedImages",
    "StandInCIFAR10",
    "TensorLoader",
    "cifar10_eval_transform",
    "cifar10_train_transform",
    "class_subset",
    "collate_images",
    "crop_flip",
    "decode_images",
    "default_num_workers",
    "denormalize",
    "draw_crop_flip",
    "extract_archive",
    "generate_standin",
    "load_cifar10",
    "load_image_folder",
    "make_loader",
    "photo_eval_transform",
    "photo_train_transform",
    "prepare_cifar10_folder",
    "random_crop_flip",
    "split_indices",
    "subset",
    "train_val_split",
    "transforms_from_weights",
]

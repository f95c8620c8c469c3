"""The Dataset page's tables, computed from a scan and its plan: subsets, bucket assignments,
the bucket histogram, the image filter for the grid, and the most frequent tags.

Rows are plain dicts (column name -> value) so the page hands them straight to st.dataframe.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.dataset.captions import has_tag, tag_frequency
from workbench.dataset.scan import Dataset, caption_path
from workbench.planning.buckets import Assignment


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def subset_rows(dataset: Dataset) -> list[dict]:
    return [{"folder": s.name, "kind": "reg" if s.is_reg else "train", "repeats": s.repeats,
             "class tokens": s.class_tokens, "images": len(s.images), "captioned": s.captioned}
            for s in dataset.subsets]


def bucket_assignment_rows(plan) -> list[dict]:
    """One row per image: where it goes and how it is cut. Crop is the pixels cut away (w×h),
    half on each side."""
    rows = []
    for im in plan.images:
        crop = Assignment(im.bucket, im.resized).crop
        rows.append({"image": im.info.path.name, "folder": im.subset.name, "size": size_label(im.info.size),
                     "bucket": size_label(im.bucket), "resized": size_label(im.resized),
                     "crop": size_label(crop), "repeats": im.repeats})
    return rows


def reg_balance_note(plan) -> str | None:
    """Why a reg image's repeats in the bucket table differ from its folder name: sd-scripts repeats
    reg images (or leaves some out) until they add up to the training images × repeats."""
    reg = [s for s in plan.dataset.subsets if s.is_reg and s.images]
    if not reg:
        return None
    folders = "; ".join(f"{s.name}: {len(s.images)} image(s) × {s.repeats} from its name, used "
                        f"{sum(im.repeats for im in plan.images if im.subset is s)} times" for s in reg)
    return (f"Reg images are balanced to the {plan.num_train_images} training images × repeats, as sd-scripts "
            f"does: they are repeated, or some left out, until they add up to as many ({folders}). The "
            "repeats column shows what each image gets.")


def bucket_histogram_rows(plan) -> list[dict]:
    """Per bucket: distinct images and images with repeats (what the step count uses)."""
    distinct: dict[tuple[int, int], int] = {}
    for im in plan.used_images:
        distinct[im.bucket] = distinct.get(im.bucket, 0) + 1
    return [{"bucket": size_label(reso), "images": distinct.get(reso, 0), "with repeats": count}
            for reso, count in plan.buckets.items()]


@dataclass(frozen=True)
class ImageFilter:
    uncaptioned: bool = False     # only images without a caption file
    bucket: str = ""              # size_label of a bucket, "" = any
    tag: str = ""                 # has this tag (case-insensitive), "" = any
    text: str = ""                # caption or file name contains this (case-insensitive)

    def keeps(self, im) -> bool:
        if self.uncaptioned and im.info.has_caption:
            return False
        if self.bucket and size_label(im.bucket) != self.bucket:
            return False
        if self.tag and not has_tag(im.info.caption, self.tag):
            return False
        needle = self.text.strip().lower()
        return not needle or needle in im.info.caption.lower() or needle in im.info.path.name.lower()


def filter_images(plan, image_filter: ImageFilter) -> list:
    """The planned images the filter keeps, in plan order (train subsets, then reg)."""
    return [im for im in plan.images if image_filter.keeps(im)]


def top_tags(dataset: Dataset, limit: int = 30, include_reg: bool = False) -> list[dict]:
    """The most frequent tags of the training captions (sd-scripts' counting), most frequent first."""
    subsets = dataset.subsets if include_reg else dataset.train
    counts = tag_frequency(im.caption for s in subsets for im in s.images)
    return [{"tag": tag, "count": n} for tag, n in counts.most_common(limit)]


def caption_of(image, caption_extension: str) -> tuple:
    """(caption file, first line the page shows or None when there is no file) of a scanned image."""
    return caption_path(image.path, caption_extension), image.caption if image.has_caption else None

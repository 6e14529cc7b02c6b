"""FER-2013 and user datasets -> uint8 face arrays, decoded once and cached.

Accepted layouts (``load_dataset`` tells them apart by looking, not by flags):

    DATA/train/<class>/*.png|jpg      Kaggle folder layout (FER-2013 "archive.zip" extracted)
    DATA.zip                          the same layout inside a zip, read in place
    fer2013.csv                       emotion,pixels,Usage (Training / PublicTest / PrivateTest)
    DATA/<class>/*.png|jpg            a user's own labelled faces (any size, colour or gray)

Every image goes through ``emocam.edge.vision.preprocess.prepare_face``, the same function the device uses.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from emocam.edge.errors import EmocamError
from emocam.edge.vision.preprocess import Preprocessing, prepare_face
from emocam.train.run import ValidationSplit

log = logging.getLogger(__name__)

SEVEN_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SIX_CLASSES = ("angry", "fear", "happy", "neutral", "sad", "surprise")
CLASS_SCHEMES = ("six", "seven", "merge-disgust")
# fer2013.csv's emotion ids, in the order the challenge defined them.
CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CSV_USAGE = {
    "train": ("Training",),
    "test": ("PublicTest", "PrivateTest"),
    "publictest": ("PublicTest",),
    "privatetest": ("PrivateTest",),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".webp")
# One line, as every error is: it ends the message of each layout problem.
EXPECTED_LAYOUT = (
    "expected DATA/train/<class>/ and DATA/test/<class>/ images (the Kaggle FER-2013 layout, a folder or .zip), "
    "fer2013.csv with columns emotion,pixels,Usage, or DATA/<class>/ images (your own labelled faces), "
    f"with <class> one of {', '.join(SEVEN_CLASSES)}"
)
# The layout of a user's own faces, as `emocam collect --out FOLDER` writes it.
USER_LAYOUT = "expected {root}/<label>/*.png (e.g. {root}/happy/0001.png), as `emocam collect --out {root}` writes"
CACHE_VERSION = 1


class DataError(EmocamError):
    """The dataset is missing, malformed or not what the loader can read. The message says why."""

    exit_code = 2


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (N, size, size) uint8, through emocam.edge.vision.preprocess.prepare_face
    labels: np.ndarray  # (N,) int64 index into label_names
    label_names: tuple[str, ...]
    source: str
    skipped: int = 0  # unreadable or corrupt images
    dropped: dict[str, int] = field(default_factory=dict)  # images of classes outside label_names

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        # Not strict: bincount pads to len(label_names), so counts is longer only if a label is out of
        # range (which the Dataset's contract rules out); the summary then shows the named classes, as before.
        return {name: int(count) for name, count in zip(self.label_names, counts, strict=False)}

    def summary(self) -> str:
        parts = [f"{self.source}: {len(self)} images", ", ".join(f"{k} {v}" for k, v in self.class_counts().items())]
        if self.skipped:
            parts.append(f"{self.skipped} unreadable images skipped")
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())))
        return "; ".join(parts)


def resolve_classes(classes: str | Iterable[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Class scheme -> (label names in output order, source class -> label renames)."""
    if isinstance(classes, str):
        if classes == "six":
            return SIX_CLASSES, {}
        if classes == "seven":
            return SEVEN_CLASSES, {}
        if classes == "merge-disgust":
            return SIX_CLASSES, {"disgust": "angry"}
        raise DataError(f"classes={classes!r}; expected one of {', '.join(CLASS_SCHEMES)} or a list of names")
    names = tuple(classes)
    unknown = [name for name in names if name not in SEVEN_CLASSES]
    if unknown or len(set(names)) != len(names) or len(names) < 2:
        raise DataError(f"classes={list(names)}: need 2 or more distinct names from {', '.join(SEVEN_CLASSES)}")
    return names, {}


# --- raw readers: each yields (class name, encoded bytes or pixel array) ---------------------


def _decode(data: bytes | np.ndarray, prep: Preprocessing) -> np.ndarray | None:
    if isinstance(data, np.ndarray):
        image = data
    else:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            return None
        if image.dtype == np.uint16:  # 16-bit PNGs exist in user folders; keep the top byte
            image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8 or image.size == 0:
        return None
    try:
        return prepare_face(image, prep)
    except ValueError:
        return None


def _class_of(name: str, path: str) -> str:
    label = name.strip().lower()
    if label not in SEVEN_CLASSES:
        raise DataError(f"unknown class folder {path!r}; {EXPECTED_LAYOUT}")
    return label


def _zip_split_prefix(names: list[str], split: str, zip_path: Path) -> str:
    """Find '<anything/>split/' inside the zip, so 'archive/train/...' works too."""
    marker = f"{split}/"
    prefixes = sorted(
        {
            n[: n.index(marker) + len(marker)]
            for n in names
            if marker in n and (n.index(marker) == 0 or n[n.index(marker) - 1] == "/")
        },
        key=len,
    )
    if not prefixes:
        raise DataError(f"{zip_path}: no '{split}/' folder inside the zip; {EXPECTED_LAYOUT}")
    return prefixes[0]


def _read_zip(zip_path: Path, split: str) -> Iterator[tuple[str, bytes, str]]:
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path} is not a readable zip file ({exc})") from exc
    with archive:
        names = archive.namelist()
        prefix = _zip_split_prefix(names, split, zip_path)
        seen: set[str] = set()
        for name in names:
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            parts = name[len(prefix) :].split("/")
            if len(parts) != 2:
                raise DataError(f"{zip_path}: unexpected entry {name!r}; {EXPECTED_LAYOUT}")
            if not parts[1].lower().endswith(IMAGE_SUFFIXES):
                continue
            label = _class_of(parts[0], f"{zip_path}:{prefix}{parts[0]}")
            seen.add(label)
            yield label, archive.read(name), f"{zip_path}:{name}"
        if not seen:
            raise DataError(f"{zip_path}:{prefix} holds no images; {EXPECTED_LAYOUT}")


def _read_class_folders(root: Path, user_folder: bool = False) -> Iterator[tuple[str, bytes, str]]:
    """Every image of root/<class>/. In a user's folder an empty class folder is skipped: `emocam
    collect` makes its folder before it saves, so a label it saved nothing for leaves one behind."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{root} has no class folders; {EXPECTED_LAYOUT}")
    labels = [(_class_of(d.name, str(d)), d) for d in class_dirs]
    for label, folder in labels:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files and any(p.is_dir() for p in folder.iterdir()):
            raise DataError(f"class folder {folder} holds folders but no images: nested too deep; "
                            f"{USER_LAYOUT.format(root=root)}")
        if not files and user_folder:
            log.warning("class folder %s is empty; skipped", folder)
            continue
        if not files:
            raise DataError(f"class folder {folder} is empty; put its .png/.jpg faces there or remove it")
        for path in files:
            try:
                yield label, path.read_bytes(), str(path)
            except OSError as exc:
                log.warning("cannot read %s (%s); skipped", path, exc)
                yield label, b"", str(path)


def _read_csv(csv_path: Path, split: str) -> Iterator[tuple[str, np.ndarray | bytes, str]]:
    usages = CSV_USAGE.get(split)
    if usages is None:
        raise DataError(f"split={split!r} for {csv_path}; expected one of {', '.join(CSV_USAGE)}")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{csv_path}: missing columns {sorted(missing)}; expected emotion,pixels,Usage")
        for row in reader:
            if row["Usage"] not in usages:
                continue
            try:
                label = CSV_EMOTIONS[int(row["emotion"])]
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                side = int(round(np.sqrt(pixels.size)))
                if side * side != pixels.size or side == 0:
                    raise ValueError(f"{pixels.size} pixels is not a square image")
            except (ValueError, IndexError) as exc:
                log.debug("%s line %d: %s", csv_path, reader.line_num, exc)
                yield "angry", b"", f"{csv_path} line {reader.line_num}"  # skipped; the label is irrelevant
                continue
            yield label, pixels.reshape(side, side), f"{csv_path} line {reader.line_num}"


def _raw_source(path: Path, split: str) -> tuple[Iterator[tuple[str, np.ndarray | bytes, str]], str]:
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist; {EXPECTED_LAYOUT}")
    if path.is_file() and path.suffix.lower() == ".zip":
        return _read_zip(path, split), f"{path}:{split}"
    if path.is_file() and path.suffix.lower() == ".csv":
        return _read_csv(path, split), f"{path}:{split}"
    if path.is_dir():
        if (path / split).is_dir():
            return _read_class_folders(path / split), f"{path / split}"
        subdirs = {p.name.lower() for p in path.iterdir() if p.is_dir()}
        if subdirs and subdirs <= set(SEVEN_CLASSES):
            return _read_class_folders(path, user_folder=True), str(path)  # a user's <class>/ folders: no split
        layout_problem = user_layout_problem(path)
        if layout_problem:
            raise DataError(layout_problem)
        raise DataError(f"{path} has no '{split}/' folder and is not a folder of class folders; {EXPECTED_LAYOUT}")
    raise DataError(f"{path} is neither a folder, a .zip nor a .csv; {EXPECTED_LAYOUT}")


def is_class_folder(path: str | Path) -> bool:
    """Whether ``path`` is a user's folder of <class>/ folders (no train/test split inside)."""
    path = Path(path)
    if not path.is_dir() or (path / "train").is_dir():
        return False
    subdirs = {p.name.lower() for p in path.iterdir() if p.is_dir()}
    return bool(subdirs) and subdirs <= set(SEVEN_CLASSES)


def user_layout_problem(path: Path) -> str:
    """One line for a folder that was meant as a user's <class>/ folders but is laid out otherwise
    (images directly in it, or the class folders one level down); '' when it is neither."""
    entries = list(path.iterdir())
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        return (f"{path} holds {len(images)} images directly (e.g. {images[0].name}) but they need a class folder; "
                f"{USER_LAYOUT.format(root=path)}")
    with_images = [p for p in entries if p.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.iterdir())]
    unknown = sorted(p.name for p in with_images if p.name.lower() not in SEVEN_CLASSES)
    if unknown and len(unknown) < len(with_images):  # some label folders, some others: a typo or a new name
        return (f"{path}: {', '.join(unknown)} is not a label; rename it to one of {', '.join(SEVEN_CLASSES)} "
                f"or remove it ({USER_LAYOUT.format(root=path)})")
    for sub in sorted(p for p in entries if p.is_dir()):
        inner = {p.name.lower() for p in sub.iterdir() if p.is_dir()}
        if inner and inner <= set(SEVEN_CLASSES) and sub.name.lower() not in ("train", "test"):
            return (f"{path} holds its class folders one level down, in {sub}; give --data {sub} "
                    f"({USER_LAYOUT.format(root=sub)})")
    return ""


# --- decode once, cache as uint8 ------------------------------------------------------------


def _decode_all(path: Path, split: str, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray, int, str]:
    """All seven classes, decoded: (images, labels as SEVEN_CLASSES indices, skipped, source)."""
    raw, source = _raw_source(path, split)
    images: list[np.ndarray] = []
    labels: list[int] = []
    unreadable: list[str] = []
    for label, data, where in raw:
        face = _decode(data, prep) if len(data) else None
        if face is None:
            unreadable.append(where)
            continue
        images.append(face)
        labels.append(SEVEN_CLASSES.index(label))
    skipped = len(unreadable)
    if not images:
        raise DataError(f"{source}: no readable images ({skipped} unreadable, e.g. {_first_few(unreadable)}); "
                        f"{EXPECTED_LAYOUT}")
    if unreadable:
        log.warning("%s: %d unreadable or corrupt images skipped: %s", source, skipped, _first_few(unreadable))
    return np.stack(images), np.asarray(labels, dtype=np.int64), skipped, source


def _first_few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emocam"


def _cache_file(path: Path, split: str, prep: Preprocessing, cache_dir: Path) -> Path:
    stat = path.stat()
    key = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{split}|{prep.to_dict()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{path.stem}-{split}-{digest}.npz"


def _load_decoded(
    path: Path, split: str, prep: Preprocessing, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray, int, str]:
    # A user's folder of class folders can change in place without its mtime changing; cache only files.
    cacheable = cache_dir is not None and path.is_file()
    cache = _cache_file(path, split, prep, cache_dir) if cacheable else None  # type: ignore[arg-type]
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as data:
                return data["images"], data["labels"], int(data["skipped"]), str(data["source"])
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring unreadable cache %s (%s)", cache, exc)
    decoded = _decode_all(path, split, prep)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=decoded[0], labels=decoded[1], skipped=decoded[2], source=decoded[3])
        tmp.replace(cache)
        log.info("cached decoded %s in %s", decoded[3], cache)
    return decoded


def load_dataset(
    path: str | Path,
    split: str = "train",
    classes: str | Iterable[str] = "six",
    prep: Preprocessing = Preprocessing(),
    cache_dir: Path | None = None,
) -> Dataset:
    """Read a dataset in any accepted layout; see the module docstring. Raises DataError."""
    label_names, renames = resolve_classes(classes)
    images, seven_labels, skipped, source = _load_decoded(Path(path), split.lower(), prep, cache_dir)
    names = [renames.get(SEVEN_CLASSES[i], SEVEN_CLASSES[i]) for i in range(len(SEVEN_CLASSES))]
    mapping = np.array([label_names.index(n) if n in label_names else -1 for n in names])
    mapped = mapping[seven_labels]
    keep = mapped >= 0
    dropped_counts = np.bincount(seven_labels[~keep], minlength=len(SEVEN_CLASSES))
    dropped = {SEVEN_CLASSES[i]: int(c) for i, c in enumerate(dropped_counts) if c}
    if not keep.any():
        raise DataError(f"{source}: none of its images belong to classes {list(label_names)}")
    dataset = Dataset(images[keep], mapped[keep].astype(np.int64), label_names, source, skipped, dropped)
    if skipped:
        log.info("%s: %d unreadable or corrupt images skipped (named when first decoded)", source, skipped)
    return dataset


def concat(datasets: list[Dataset]) -> Dataset:
    """Mix datasets with the same label names (FER-2013 plus a user's own faces, say)."""
    first = datasets[0]
    for other in datasets[1:]:
        if other.label_names != first.label_names or other.images.shape[1:] != first.images.shape[1:]:
            raise DataError(f"cannot mix {first.source} and {other.source}: different classes or image size")
    dropped: dict[str, int] = {}
    for ds in datasets:
        for key, value in ds.dropped.items():
            dropped[key] = dropped.get(key, 0) + value
    return Dataset(
        np.concatenate([d.images for d in datasets]),
        np.concatenate([d.labels for d in datasets]),
        first.label_names,
        " + ".join(d.source for d in datasets),
        sum(d.skipped for d in datasets),
        dropped,
    )


def subset(ds: Dataset, index: np.ndarray, source_suffix: str) -> Dataset:
    return replace(ds, images=ds.images[index], labels=ds.labels[index], source=f"{ds.source}{source_suffix}")


VAL_GROUPINGS = ("pixels", "none")


def duplicate_groups(images: np.ndarray) -> np.ndarray:
    """(N,) group id per image: pixel-identical images share an id. FER-2013 holds such twins
    (the same face under one or two labels); a split must keep each group on one side."""
    digests = [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]
    ids: dict[bytes, int] = {}
    return np.array([ids.setdefault(digest, len(ids)) for digest in digests], dtype=np.int64)


def validation_count(members: int, fraction: float, small_classes: bool = True) -> int:
    """How many of a class's ``members`` go to validation: its rounded share; with
    ``small_classes``, at least one for a class of 2 or more (a user's few dozen faces per class
    still get scored) and never all of them (a class of one stays in training)."""
    share = int(round(members * fraction))
    if not small_classes:
        return share  # FER-2013 layouts: the split every earlier run drew
    if members < 2:
        return 0
    return min(members - 1, max(1, share))


def split_validation(
    ds: Dataset, fraction: float = 0.1, seed: int = 0, grouping: str = "none", small_classes: bool = False
) -> tuple[Dataset, Dataset]:
    """Stratified train/validation split; the same seed gives the same split.

    ``grouping="pixels"`` moves whole duplicate groups: no validation image then has a
    pixel-identical twin in training, which would otherwise score ~90% and flatter the model.
    Each group counts under the label of its first image; ``none`` is the plain per-file split.
    ``small_classes`` (a user's own folder): see ``validation_count``.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction {fraction} must be between 0 and 1")
    if grouping not in VAL_GROUPINGS:
        raise DataError(f"validation grouping {grouping!r}; expected one of {', '.join(VAL_GROUPINGS)}")
    rng = np.random.default_rng(seed)
    groups = duplicate_groups(ds.images) if grouping == "pixels" else np.arange(len(ds))
    _, first = np.unique(groups, return_index=True)  # first image of each group, in group-id order
    group_labels = ds.labels[first]
    val_groups: list[np.ndarray] = []
    alone: list[str] = []
    for label in range(len(ds.label_names)):
        members = np.flatnonzero(group_labels == label)
        rng.shuffle(members)
        val_groups.append(members[: validation_count(len(members), fraction, small_classes)])
        if small_classes and len(members) == 1:
            alone.append(ds.label_names[label])
    if alone:
        log.warning("%s: %s has a single image (or duplicate group): kept in training, none in validation",
                    ds.source, ", ".join(alone))
    in_val = np.isin(groups, np.concatenate(val_groups))
    val, train = np.flatnonzero(in_val), np.flatnonzero(~in_val)
    suffix = " by duplicate group" if grouping == "pixels" else ""
    return subset(ds, train, f"[train {1 - fraction:.0%}{suffix}]"), subset(ds, val, f"[val {fraction:.0%}{suffix}]")


def jpeg_reencoded(ds: Dataset, quality: int) -> Dataset:
    """Every image through a JPEG of ``quality`` and back, as the test split's files and most
    users' photos are: validation scored this way reads like the data the model will meet."""
    if not quality:
        return ds
    images = np.stack([jpeg_roundtrip(image, quality) for image in ds.images]) if len(ds) else ds.images
    return replace(ds, images=images, source=f"{ds.source}[JPEG q{quality}]")


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError(f"OpenCV could not JPEG-encode a {image.shape} image")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def training_split(
    data: str | Path,
    split: ValidationSplit,
    classes: str | Iterable[str] = "six",
    extra_data: Iterable[str | Path] = (),
    cache_dir: str | Path = "",
    limit_per_class: int = 0,
    replay_from: str | Path = "",
    replay_per_class: int = 0,
) -> tuple[Dataset, Dataset]:
    """A run's training and validation sets: ``data`` plus ``extra_data``, split as the run
    recorded (``ValidationSplit.of_run`` of its config). The one place the split is drawn: fit,
    evaluate and convert all come here, so they agree on which images chose a model.

    ``replay_from`` adds a fixed, seeded sample of ``replay_per_class`` images per class of that
    dataset's training split to training only: validation stays the user's own data."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    parts = [load_dataset(data, "train", classes, cache_dir=cache)]
    for extra in extra_data:
        parts.append(load_dataset(extra, "train", parts[0].label_names, cache_dir=cache))
    for part in parts:
        log.info("%s", part.summary())
    everything = concat(parts)
    # A user's folder of a few dozen faces per class: every class of two or more is scored.
    small_classes = is_class_folder(data)
    train, val = split_validation(everything, split.fraction, split.seed, split.grouping, small_classes)
    if limit_per_class:
        train = per_class_limit(train, limit_per_class, split.seed)
        val = per_class_limit(val, max(2, limit_per_class // 4), split.seed)
    if not len(train) or not len(val):
        raise DataError(
            f"{everything.source}: a {split.fraction:g} validation split of its {len(everything)} images leaves "
            f"{len(train)} for training and {len(val)} for validation; give more images per class, "
            "or another --val-fraction"
        )
    if replay_from:
        replay = load_dataset(replay_from, "train", everything.label_names, cache_dir=cache)
        replay = per_class_limit(replay, replay_per_class, split.seed)
        replay = replace(replay, source=f"replay {replay.source}")
        log.info("%s (training only)", replay.summary())
        train = concat([train, replay])
    return train, val


def per_class_limit(ds: Dataset, limit: int, seed: int = 0) -> Dataset:
    """At most ``limit`` images per class, chosen with a fixed seed (smoke runs, representative sets)."""
    rng = np.random.default_rng(seed)
    index = []
    for label in range(len(ds.label_names)):
        members = np.flatnonzero(ds.labels == label)
        index.append(rng.permutation(members)[:limit])
    return subset(ds, np.sort(np.concatenate(index)), f"[<= {limit}/class]")

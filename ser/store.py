"""FeatureStore: features of many clips, computed on every core and cached on disk.

The pure feature code is in `ser.features`; this module owns what is not pure: the worker
pool, the cache (one folder per batch, keyed by the clips' names and contents, the feature
config, the spaces and the augmentation) and the augmented copies of training clips.

>>> store = FeatureStore(cfg=DEFAULT)  # doctest: +SKIP
>>> arrays = store.features(paths)  # {"fs1": (N, 169), "fs2": (N, 128, 216)}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ser import config
from ser.augment import AugmentConfig, augment_waveform
from ser.features import (
    ALL_SPACES,
    DEFAULT,
    LENGTH_KEY,
    LENGTHS,
    SPACES,
    FeatureConfig,
    apply_fs2_norm,
    clip_features,
    concat_variable,
    stack_padded,
)
from ser.fileio import content_digest

log = logging.getLogger(__name__)


class FeatureError(RuntimeError):
    """Some clips of a batch could not be featurised; ``failures`` maps path → reason."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(f"{len(failures)} clip(s) could not be read, e.g. {first[0]}: "
                         f"{first[1]}")


def _file_key(path: str) -> str:
    """A clip's identity in cache keys: its file name, size and a digest of its bytes.

    Content rather than location or modification time, so a corpus that is copied, moved
    or provisioned again keeps its cached features. The name stays in the key because the
    augmented copies are seeded by it.
    """
    try:
        return f"{os.path.basename(path)}|{os.path.getsize(path)}|{content_digest(path)}"
    except OSError:  # a folder, or unreadable: extraction names the problem (FeatureError)
        return f"{os.path.abspath(path)}|unreadable"


def cache_key(paths: list[str], cfg: FeatureConfig, spaces: tuple[str, ...],
              aug: AugmentConfig | None, length: str = "fixed") -> str:
    """Identifies one batch: the clips (name, size, content digest), the config, spaces,
    augmentation and the FS2 length mode (absent for ``fixed``)."""
    h = hashlib.sha1()
    head = {"cfg": cfg.as_dict(), "spaces": sorted(spaces),
            "aug": aug.as_dict() if aug and aug.enabled else None}
    if length != "fixed":
        head["length"] = length
    h.update(json.dumps(head, sort_keys=True).encode())
    for p in paths:
        h.update(_file_key(p).encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def _extract_task(task: tuple) -> tuple[int, dict | str]:
    """Decode one clip once; featurise the original and/or its augmented copies."""
    index, path, cfg, spaces, want_plain, augs, length = task
    from ser.audio import AudioError, load_audio

    try:
        y, sr = load_audio(path, sr=cfg.sample_rate)
    except AudioError as err:
        return index, str(err)
    out = {}
    if want_plain:
        out["plain"] = clip_features(y, cfg=cfg, spaces=spaces, length=length)
    for kind, aug in augs:
        out[kind] = clip_features(augment_waveform(y, sr, aug, Path(path).stem), cfg=cfg,
                                  spaces=spaces, length=length)
    return index, out


class FeatureStore:
    """Features of clips under one feature config, cached below ``root``.

    Parameters
    ----------
    root
        Cache folder (default ``<SER_CACHE_DIR>/features``).
    cfg
        The feature config every array is computed with.
    workers
        Processes for extraction (default: every core).
    cache
        False computes everything and writes nothing.
    length
        ``"fixed"``: FS2 is ``(N, n_mels, fs2_frames)``. ``"variable"``: every clip keeps
        its own frames (`ser.features.variable_frames`); FS2 comes padded with the floor to
        the longest clip of the batch, and ``fs2_len`` (N,) gives each clip's own length.
        Cached under its own key.
    """

    def __init__(self, root: Path | None = None, cfg: FeatureConfig = DEFAULT, *,
                 workers: int | None = None, cache: bool = True, length: str = "fixed"):
        if length not in LENGTHS:
            raise ValueError(f"length must be fixed or variable, not {length!r}")
        self.length = length
        self.root = Path(root) if root else config.cache_dir() / "features"
        self.cfg = cfg.extraction()  # what is computed and cached
        self.output_cfg = cfg  # what callers get (FS2 normalisation applied after the cache)
        self.workers = workers
        self.cache = cache

    def features(self, paths: list[str], *, spaces: tuple[str, ...] = SPACES,
                 progress=None) -> dict[str, np.ndarray]:
        """Stacked features of ``paths`` in order, e.g. ``{"fs1": (N, 169), "fs2": (N, 128,
        216)}`` float32. ``progress(done, total)`` is called as clips finish."""
        return self.with_copies(paths, [], spaces=spaces, progress=progress)[0]

    def augmented(self, paths: list[str], augment: AugmentConfig, *, copies: int = 1,
                  spaces: tuple[str, ...] = SPACES, progress=None) -> dict[str, np.ndarray]:
        """Features of ``copies`` augmented copies of each clip (copy after copy)."""
        return self.with_copies([], paths, augment=augment, copies=copies, spaces=spaces,
                                progress=progress)[1]

    def with_copies(self, paths: list[str], aug_paths: list[str], *,
                    augment: AugmentConfig | None = None, copies: int = 1,
                    spaces: tuple[str, ...] = SPACES, progress=None, stacked: bool = True
                    ) -> tuple[dict[str, np.ndarray] | None, dict | list | None]:
        """Features of ``paths`` and of ``copies`` augmented copies of ``aug_paths``, in one
        pass that decodes each clip once (decoding is a third of the cost).

        Each batch, and each copy, is cached on its own, so any can later be loaded alone
        and adding a copy re-uses the others. Returns ``(plain, augmented)``; the copies are
        stacked copy after copy (``copies * len(aug_paths)`` rows, the first numbered
        ``augment.copy``), or with ``stacked=False`` given as a list of one dict per copy
        (memory-mapped from the cache when cached), so a caller that stacks them with other
        rows builds its array once instead of holding the copies twice. An empty list gives
        ``None`` in its place.
        """
        paths = [str(p) for p in paths]
        enabled = augment is not None and augment.enabled
        aug_paths = [str(p) for p in aug_paths] if enabled else []
        spaces = tuple(s for s in ALL_SPACES if s in spaces)
        jobs = {"plain": (paths, None)}
        if aug_paths:
            jobs.update({f"aug{k}": (aug_paths, replace(augment, copy=augment.copy + k))
                         for k in range(copies)})
        results: dict[str, dict[str, np.ndarray] | None] = {k: None for k in jobs}
        folders = {}
        for kind, (plist, aug) in jobs.items():
            if not plist:
                continue
            # Without the cache no key is needed (it reads every clip's bytes to hash them).
            folders[kind] = (self.root / cache_key(plist, self.cfg, spaces, aug, self.length)
                             if self.cache else None)
            if self.cache and (folders[kind] / "done.json").exists():
                results[kind] = _open_cache(folders[kind], spaces, len(plist), self.cfg,
                                            variable=self.length == "variable")
        todo = [k for k in folders if results[k] is None]
        if todo:
            self._extract_missing(jobs, todo, folders, results, spaces, progress)
        elif progress:
            n = len(paths) + len(aug_paths) * (copies if aug_paths else 0)
            progress(n, n)
        augmented = None
        if aug_paths:
            parts = [results[f"aug{k}"] for k in range(copies)]
            if not stacked:
                return self._finish(results["plain"]), [self._finish(p) for p in parts]
            augmented = parts[0] if copies == 1 else concat_variable(
                parts, spaces, floor=-self.cfg.top_db)
        return self._finish(results["plain"]), self._finish(augmented)

    def _finish(self, arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
        if arrays is None or "fs2" not in arrays or self.output_cfg.fs2_norm == "none":
            return arrays
        return {**arrays, "fs2": apply_fs2_norm(np.asarray(arrays["fs2"]), self.output_cfg)}

    def _extract_missing(self, jobs, todo, folders, results, spaces, progress) -> None:
        """Compute (and cache) the uncached batches ``todo``, decoding each clip once."""
        from ser.parallel import map_unordered

        cfg = self.cfg
        variable = self.length == "variable"
        # Variable-length FS2 images are collected one by one and padded at the end.
        out = {k: {s: ([None] * len(jobs[k][0]) if variable and s == "fs2" else
                       np.empty((len(jobs[k][0]), *cfg.input_shape(s)[1:]), np.float32))
                   for s in spaces} for k in todo}
        # One task per distinct clip; remember where each of its batches' rows go. A
        # clip's features (plain or an augmented copy) depend only on the clip, the config
        # and the augmentation, not on the batch, so what another batch computed (another
        # pool, another held-out corpus, another run's training clips) is read back per
        # clip.
        where: dict[str, dict[str, list[int]]] = {}
        copy_dirs = {k: None if variable else self._copy_dir(jobs[k][1], spaces)
                     for k in todo}
        for k in todo:
            clip_dir = copy_dirs[k]
            for i, p in enumerate(jobs[k][0]):
                if clip_dir is not None and self._read_copy(clip_dir, p, out[k], i, spaces):
                    continue
                where.setdefault(p, {}).setdefault(k, []).append(i)
        unique = list(where)
        tasks = [(j, p, cfg, spaces, "plain" in where[p],
                  [(k, jobs[k][1]) for k in where[p] if k != "plain"], self.length)
                 for j, p in enumerate(unique)]
        failures: dict[str, str] = {}
        for j, result in map_unordered(_extract_task, tasks, workers=self.workers,
                                       progress=progress):
            p = unique[j]
            if isinstance(result, str):
                failures[p] = result
                continue
            bad = sorted({s for r in result.values() for s, a in r.items()
                          if not np.isfinite(a).all()})
            if bad:
                failures[p] = (f"its {'/'.join(bad)} features are not finite (NaN or "
                               "infinity)")
                continue
            for k, rows in where[p].items():
                for i in rows:
                    for s in spaces:
                        out[k][s][i] = result[k][s]
                if copy_dirs[k] is not None:
                    _write_copy(copy_dirs[k] / _clip_file(p), result[k])
        if failures:
            raise FeatureError(failures)
        if variable and "fs2" in spaces:
            for k in todo:
                out[k]["fs2"], out[k][LENGTH_KEY] = stack_padded(out[k]["fs2"],
                                                                 floor=-cfg.top_db)
        for k in todo:
            results[k] = out.pop(k)
            if self.cache:
                plist, aug = jobs[k]
                _write_cache(folders[k], results[k], {"n": len(plist), "cfg": cfg.as_dict(),
                                                      "spaces": spaces, "length": self.length,
                                                      "augment": aug.as_dict() if aug else None})
                # Mapped back from the files just written (and checksummed), as a warm cache
                # gives it: the batch then lives in the page cache, not in this process
                # beside the run's own training arrays.
                results[k] = _map_written(folders[k], results[k])


    def _copy_dir(self, aug: AugmentConfig | None, spaces: tuple[str, ...]) -> Path | None:
        """Folder of per-clip features for this config and augmentation (``None``: the
        plain clips), or None without the cache."""
        if not self.cache:
            return None
        head = {"cfg": self.cfg.as_dict(), "spaces": sorted(spaces)}
        # Augmented copies keep the key they always had; plain clips have their own.
        head["aug"] = aug.as_dict() if aug is not None else "plain"
        key = hashlib.sha1(json.dumps(head, sort_keys=True).encode())
        return self.root / "copies" / key.hexdigest()[:20]

    @staticmethod
    def _read_copy(clip_dir: Path, path: str, out: dict, i: int,
                   spaces: tuple[str, ...]) -> bool:
        f = clip_dir / _clip_file(path)
        if not f.exists():
            return False
        try:
            with np.load(f) as z:
                rows = {s: z[s] for s in spaces}
        except (OSError, ValueError, KeyError):
            return False  # damaged: recompute it
        for s in spaces:
            if rows[s].shape != out[s].shape[1:] or not np.isfinite(rows[s]).all():
                return False
        for s in spaces:
            out[s][i] = rows[s]
        return True


def _clip_file(path: str) -> str:
    """Per-clip cache file name: the clip's `_file_key`, hashed."""
    return hashlib.sha1(_file_key(path).encode()).hexdigest()[:24] + ".npz"


def _write_copy(target: Path, arrays: dict[str, np.ndarray]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, target)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _open_cache(folder: Path, spaces: tuple[str, ...], n: int,
                cfg: FeatureConfig, *, variable: bool = False) -> dict[str, np.ndarray] | None:
    """The cached arrays of ``folder`` (memory-mapped), or None after removing an entry
    that fails its checks, so the caller rebuilds it.

    Each array file must exist with the size and SHA-256 recorded when it was written, and
    the shape the batch needs. An entry written before checksums were recorded is checked
    for content instead (shape, finite values) and given its checksums.
    """
    reason = None
    try:
        meta = json.loads((folder / "done.json").read_text())
        files = meta.get("files")
        arrays = {}
        names = spaces + ((LENGTH_KEY,) if variable and "fs2" in spaces else ())
        for s in names:
            f = folder / f"{s}.npy"
            want = (n, *cfg.input_shape(s)[1:])
            if files is not None:
                rec = files.get(s) or {}
                if f.stat().st_size != rec.get("bytes"):
                    reason = f"{s}.npy has the wrong size"
                    break
                if _file_digest(f) != rec.get("sha256"):
                    reason = f"{s}.npy does not match its checksum"
                    break
            arr = np.load(f, mmap_mode="r")
            if variable and s == LENGTH_KEY:
                want, dtype = (n,), np.int32
            elif variable and s == "fs2":
                want, dtype = (n, cfg.n_mels, arr.shape[-1] if arr.ndim == 3 else -1), np.float32
            else:
                dtype = np.float32
            if arr.shape != want or arr.dtype != dtype:
                reason = f"{s}.npy holds {arr.shape} {arr.dtype}, not {want} {dtype.__name__}"
                break
            if files is None and not np.isfinite(arr).all():
                reason = f"{s}.npy holds NaN or infinite values"
                break
            arrays[s] = arr
    except FileNotFoundError as err:
        reason = f"{Path(err.filename or '?').name} is missing"
    except (OSError, ValueError, TypeError, AttributeError) as err:
        reason = f"it cannot be read ({type(err).__name__})"
    if reason is None and files is None:
        meta["files"] = _file_records(folder, names)  # upgrade a pre-checksum entry
        try:
            from ser.fileio import atomic_write_text

            atomic_write_text(folder / "done.json", json.dumps(meta))
        except OSError:
            pass
    if reason is None:
        return arrays
    log.warning("Feature cache %s is damaged (%s); it is removed and rebuilt.", folder.name,
                reason)
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _map_written(folder: Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` as memory maps of the cache entry `_write_cache` just wrote for them, or
    ``arrays`` themselves when it cannot be read back (not checksummed again)."""
    try:
        mapped = {s: np.load(folder / f"{s}.npy", mmap_mode="r") for s in arrays}
    except (OSError, ValueError):
        return arrays
    same = all(m.shape == np.shape(arrays[s]) for s, m in mapped.items())
    return mapped if same else arrays


def _file_records(folder: Path, spaces) -> dict[str, dict]:
    return {s: {"bytes": (folder / f"{s}.npy").stat().st_size,
                "sha256": _file_digest(folder / f"{s}.npy")} for s in spaces}


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write into a temporary sibling folder, then rename: a crash leaves no half cache.
    ``done.json`` records each array file's size and SHA-256 (checked on every load)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp", dir=folder.parent))
    try:
        from ser.fileio import current_umask

        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide it from others
        for s, arr in arrays.items():
            np.save(tmp / f"{s}.npy", arr)
        meta = {**meta, "files": _file_records(tmp, tuple(arrays))}
        (tmp / "done.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same batch first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

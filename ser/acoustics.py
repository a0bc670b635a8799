"""Acoustic facts per clip and per corpus: what makes one corpus sound unlike another.

A model trained on one corpus meets another corpus's microphones, rooms, codecs and level
settings as well as its voices. These measures put numbers on that shift, clip by clip,
so corpora can be compared side by side (the Dataset page's "Compare corpora" tab):

- level: RMS and peak in dBFS (0 dBFS = a full-scale sample);
- how much of the clip is speech: the share of frames within 40 dB of the loudest frame;
- the background: the level of the quietest frames (noise floor), and how far the loudest
  frame rises above it (dynamic range) — per emotion this shows a confound: in a corpus
  whose background noise is constant, the louder emotions have the larger range;
- bandwidth: how high in frequency the recording reaches (a telephone or 16-kHz corpus
  stops at 4 or 8 kHz);
- the long-term average spectrum (LTAS): mean power per mel band over the clip.

Everything is computed at :data:`SAMPLE_RATE` (22 050 Hz, the features' rate), so every
corpus is measured on the same grid whatever its own rate. Pure numpy/librosa.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ser import config

SAMPLE_RATE = config.SAMPLE_RATE  # 22 050 Hz
N_FFT = 2048
HOP = 512
N_BANDS = 64  # mel bands of the long-term average spectrum
FMAX = 11025.0  # top of the mel bands (the Nyquist frequency at 22 050 Hz)
ACTIVE_RANGE_DB = 40.0  # a frame is active when within this of the clip's loudest frame
BANDWIDTH_RANGE_DB = 50.0  # bandwidth: highest frequency within this of the LTS maximum
NOISE_PERCENTILE = 10  # noise floor: this percentile of the frame levels
FLOOR_DB = -120.0  # what silence measures (instead of −∞)

#: The scalar columns of :func:`clip_acoustics`, with units, in display order.
MEASURES = {
    "duration_s": "duration (s)",
    "rms_dbfs": "RMS level (dBFS)",
    "peak_dbfs": "peak level (dBFS)",
    "noise_floor_dbfs": "noise floor (dBFS)",
    "dynamic_range_db": "loudest frame above the noise floor (dB)",
    "active_fraction": "active speech fraction",
    "bandwidth_hz": "bandwidth (Hz)",
}


def _db(power: np.ndarray | float) -> np.ndarray | float:
    """Power → dB, floored at :data:`FLOOR_DB`."""
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


def band_frequencies(sr: int = SAMPLE_RATE, n_bands: int = N_BANDS,
                     fmax: float = FMAX) -> np.ndarray:
    """Centre frequency (Hz) of each LTAS mel band."""
    import librosa

    return librosa.mel_frequencies(n_mels=n_bands + 2, fmin=0.0,
                                   fmax=min(fmax, sr / 2))[1:-1]


def _mel_filters(sr: int, n_bands: int = N_BANDS, fmax: float = FMAX) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=n_bands, fmin=0.0,
                               fmax=min(fmax, sr / 2), norm=None)


def clip_acoustics(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict:
    """Acoustic facts of one mono clip.

    Parameters
    ----------
    y
        Samples in [-1, 1] (float). Any rate works; measure every corpus at the same rate
        (:data:`SAMPLE_RATE`) so the numbers compare.
    sr
        Sample rate of ``y`` in Hz.

    Returns
    -------
    dict
        ``duration_s``
            Length in seconds.
        ``rms_dbfs``, ``peak_dbfs``
            RMS and absolute peak of the whole clip, in dB re full scale (0 dBFS = 1.0).
        ``noise_floor_dbfs``
            Level of the quiet frames: the 10th percentile of the frame RMS levels (Hann
            frames of 2048 samples, hop 512, wholly inside the clip), in dBFS.
        ``dynamic_range_db``
            The loudest frame's level minus the noise floor, in dB.
        ``active_fraction``
            Share of frames whose RMS level is within 40 dB of the clip's loudest frame
            (a crude voice-activity measure: leading/trailing silence lowers it).
        ``bandwidth_hz``
            The highest frequency at which the clip's long-term spectrum (power of each
            FFT bin, 2048-point Hann frames, averaged over the active frames) is within
            50 dB of that spectrum's maximum. A recording low-passed at 4 kHz measures
            about 4 kHz; one that fills the band up to the Nyquist frequency measures about
            ``sr / 2``. 0 for a silent clip.
        ``ltas_db``
            Long-term average spectrum: mean power (over the active frames) in each of 64
            mel bands spanning 0–11 025 Hz (capped at ``sr / 2``), in dB re full scale
            (float32 array of 64; see :func:`band_frequencies` for the band centres).

        Silence measures :data:`FLOOR_DB` (−120 dB) instead of −∞.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32).ravel()
    n = len(y)
    out = {"duration_s": n / sr if sr else float("nan")}
    if n == 0 or not np.any(y):
        out.update(rms_dbfs=FLOOR_DB, peak_dbfs=FLOOR_DB, noise_floor_dbfs=FLOOR_DB,
                   dynamic_range_db=0.0, active_fraction=0.0, bandwidth_hz=0.0,
                   ltas_db=np.full(N_BANDS, FLOOR_DB, dtype=np.float32))
        return out
    y64 = y.astype(np.float64)
    out["rms_dbfs"] = float(_db(np.mean(y64 ** 2)))
    out["peak_dbfs"] = float(_db(np.max(np.abs(y64)) ** 2))
    if n < N_FFT:  # too short for one frame: zero-pad to one
        y64 = np.pad(y64, (0, N_FFT - n))
    # Frames lie wholly inside the clip (no padding): a frame straddling a padded edge
    # would see the clip's first sample as a click and spread energy up to Nyquist.
    power = np.abs(librosa.stft(y64, n_fft=N_FFT, hop_length=HOP, center=False)) ** 2
    # Frame level from the spectrum (Parseval): mean square of the Hann-windowed frame.
    window = np.hanning(N_FFT + 1)[:-1]
    frame_ms = (power[0] + power[-1] + 2 * power[1:-1].sum(axis=0)) / (
        N_FFT * np.sum(window ** 2))
    frame_db = _db(frame_ms)
    active = frame_db >= frame_db.max() - ACTIVE_RANGE_DB
    out["noise_floor_dbfs"] = float(np.percentile(frame_db, NOISE_PERCENTILE))
    out["dynamic_range_db"] = float(frame_db.max()) - out["noise_floor_dbfs"]
    out["active_fraction"] = float(active.mean())
    # Normalise so a full-scale sine of any frequency reads about 0 dB in its bin.
    lts = power[:, active].mean(axis=1) * 4.0 / np.sum(window) ** 2
    lts_db = _db(lts)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    within = np.flatnonzero(lts_db >= lts_db.max() - BANDWIDTH_RANGE_DB)
    out["bandwidth_hz"] = float(freqs[within[-1]]) if len(within) else 0.0
    mel = _mel_filters(sr) @ lts
    out["ltas_db"] = _db(mel).astype(np.float32)
    return out


# ----------------------------------------------------------------------- corpora

def _label_column(manifest: pd.DataFrame) -> pd.Series:
    """One of the six emotions, else the corpus's own label (``surprise``, ``calm``…)."""
    emo = manifest["emotion"].fillna("").astype(str)
    raw = (manifest["label_raw"].fillna("").astype(str) if "label_raw" in manifest
           else pd.Series("", index=manifest.index))
    return emo.where(emo != "", raw.where(raw != "", "unlabelled"))


def _corpus_column(manifest: pd.DataFrame) -> pd.Series:
    for col in ("corpus", "dataset"):
        if col in manifest:
            return manifest[col].fillna("").astype(str)
    return pd.Series("corpus", index=manifest.index)


def sample_clips(manifest: pd.DataFrame, per_group: int = 60, seed: int = 0) -> pd.DataFrame:
    """A seeded stratified sample: at most ``per_group`` clips of each (corpus, label).

    ``label`` is the emotion, or the corpus's own label for clips outside the six. The
    result keeps the manifest's columns plus ``corpus`` and ``label``, in manifest order.
    """
    df = manifest.assign(corpus=_corpus_column(manifest), label=_label_column(manifest))
    rng = np.random.default_rng(seed)
    keep = []
    for _, rows in df.groupby(["corpus", "label"], sort=True):
        idx = rows.index.to_numpy()
        if len(idx) > per_group:
            idx = rng.choice(idx, per_group, replace=False)
        keep.extend(idx.tolist())
    return df.loc[sorted(keep, key=df.index.get_loc)]


def _measure_path(item: tuple[int, str]) -> tuple[int, dict]:
    from ser.audio import AudioError, load_audio

    pos, path = item
    try:
        y, sr = load_audio(path, sr=SAMPLE_RATE)
    except (AudioError, OSError) as err:
        return pos, {"error": str(err)}
    return pos, clip_acoustics(y, sr)


def corpus_acoustics(manifest: pd.DataFrame, *, per_corpus_emotion: int = 60, seed: int = 0,
                     workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> tuple[pd.DataFrame, np.ndarray]:
    """Measure a stratified sample of a corpus (or pool): the per-clip facts and LTAS.

    Parameters
    ----------
    manifest
        A corpus or pool manifest (``path``, ``emotion``; ``corpus``, ``label_raw``,
        ``speaker``, ``sex`` when present).
    per_corpus_emotion
        At most this many clips of each (corpus, label) are decoded (seeded sample, see
        :func:`sample_clips`); 60 keeps five corpora near a minute on two cores.
    seed
        Seed of the sample.
    workers
        Processes for decoding (default: all cores).
    progress
        ``progress(done, total)`` as clips are measured.

    Returns
    -------
    clips : pandas.DataFrame
        One row per sampled clip: ``clip, path, corpus, label, emotion, speaker, sex`` (those
        present) and the scalar measures of :func:`clip_acoustics` (see :data:`MEASURES`),
        plus ``error`` (empty unless the clip could not be decoded; its measures are NaN).
    ltas : numpy.ndarray
        ``(len(clips), 64)`` float32, row ``i`` the LTAS (dB) of ``clips`` row ``i``.
    """
    from ser.parallel import map_unordered

    sample = sample_clips(manifest, per_corpus_emotion, seed).reset_index(drop=True)
    items = list(enumerate(sample["path"].astype(str)))
    results = dict(map_unordered(_measure_path, items, workers=workers, progress=progress,
                                 chunksize=8))
    keep = [c for c in ("clip", "path", "corpus", "label", "emotion", "label_raw", "speaker",
                        "sex") if c in sample]
    clips = sample[keep].copy()
    ltas = np.full((len(sample), N_BANDS), np.nan, dtype=np.float32)
    for name in MEASURES:
        clips[name] = np.nan
    clips["error"] = ""
    for pos, res in results.items():
        if "error" in res:
            clips.loc[pos, "error"] = res["error"]
            continue
        for name in MEASURES:
            clips.loc[pos, name] = res[name]
        ltas[pos] = res["ltas_db"]
    return clips, ltas


def ltas_table(clips: pd.DataFrame, ltas: np.ndarray, by: str | tuple[str, ...] = "corpus", *,
               relative: bool = True) -> pd.DataFrame:
    """Mean LTAS of each group of clips, one row per group, one column per band (Hz).

    Parameters
    ----------
    clips, ltas
        As returned by :func:`corpus_acoustics`.
    by
        Column(s) to group by: ``"corpus"``, or ``("corpus", "label")`` for each emotion
        within each corpus.
    relative
        Shift each clip's LTAS so its loudest band is 0 dB before averaging: the curves
        then compare spectral *shape* (microphone, room, bandwidth), not level (which the
        RMS measure shows). ``False`` averages absolute levels (dB re full scale).

    Returns
    -------
    pandas.DataFrame
        Index: the group values (a MultiIndex for several columns); columns: band centre
        frequencies in Hz; values: mean dB over the group's clips (averaged in dB, so one
        loud clip does not dominate), plus a column ``n`` with the clip count. Clips that
        could not be decoded, and silent ones, are left out.
    """
    by = [by] if isinstance(by, str) else list(by)
    ltas = np.asarray(ltas, dtype=np.float64)
    # Undecodable (NaN) and silent clips have no spectrum to average.
    ok = np.isfinite(ltas).all(axis=1) & (np.nan_to_num(ltas, nan=FLOOR_DB).max(axis=1)
                                          > FLOOR_DB)
    values = ltas - ltas.max(axis=1, keepdims=True) if relative else ltas
    freqs = np.round(band_frequencies(), 1)
    frame = pd.DataFrame(values[ok], columns=freqs)
    keys = clips.reset_index(drop=True).loc[ok, by].reset_index(drop=True)
    grouped = pd.concat([keys, frame], axis=1).groupby(by, sort=False)
    table = grouped[list(freqs)].mean()
    table.insert(0, "n", grouped.size())
    if "label" in by:  # groups in order of appearance; the six emotions first, in order
        rank = {lab: i for i, lab in enumerate(config.LABELS)}
        pos = by.index("label")
        keys = [k if isinstance(k, tuple) else (k,) for k in table.index]
        first: dict = {}
        for k in keys:
            first.setdefault(k[:pos], len(first))
        order = sorted(range(len(keys)), key=lambda i: (
            first[keys[i][:pos]], rank.get(keys[i][pos], len(rank)), str(keys[i][pos])))
        table = table.iloc[order]
    return table


def corpus_counts(manifest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Counts that compare the corpora of a pool (or describe one corpus).

    Returns
    -------
    dict
        ``emotions``: clips per corpus (rows) and emotion (the six columns);
        ``outside``: clips whose label is none of the six, per corpus and raw label
        (columns ``corpus, label, clips``; empty when there are none);
        ``speakers``: speakers per corpus and sex (columns ``corpus, sex, speakers``; sex is
        ``"unknown"`` where the corpus does not say);
        ``durations``: ``corpus, emotion, duration_s`` of every clip.
    """
    corpus = _corpus_column(manifest)
    emo = manifest["emotion"].fillna("").astype(str)
    order = list(dict.fromkeys(corpus))
    six = emo.isin(config.LABELS)
    emotions = (pd.crosstab(corpus[six], emo[six]).reindex(index=order, columns=config.LABELS,
                                                            fill_value=0))
    label = _label_column(manifest)
    outside = (pd.DataFrame({"corpus": corpus[~six], "label": label[~six]})
               .value_counts(sort=False).rename("clips").reset_index())
    sex = (manifest["sex"].fillna("").astype(str).str.lower() if "sex" in manifest
           else pd.Series("", index=manifest.index))
    sex = sex.where(sex.isin(["female", "male"]), "unknown")
    spk = pd.DataFrame({"corpus": corpus, "speaker": manifest["speaker"].astype(str),
                        "sex": sex}).drop_duplicates(["corpus", "speaker"])
    speakers = spk.groupby(["corpus", "sex"], sort=False).size().rename("speakers").reset_index()
    durations = pd.DataFrame({"corpus": corpus, "emotion": emo,
                              "duration_s": manifest["duration_s"].astype(float)})
    return {"emotions": emotions, "outside": outside, "speakers": speakers,
            "durations": durations}


def describe_measures(clips: pd.DataFrame) -> pd.DataFrame:
    """Median of each measure per corpus (rows: corpora; columns: :data:`MEASURES` names)."""
    ok = clips[clips["error"].fillna("") == ""] if "error" in clips else clips
    order = list(dict.fromkeys(clips["corpus"]))
    med = ok.groupby("corpus", sort=False)[list(MEASURES)].median().reindex(order)
    med.insert(0, "clips measured", ok.groupby("corpus", sort=False).size().reindex(order))
    return med

"""ser.segments against the real Silero VAD on synthetic speech.

Speech comes from the repo's own source-filter voice synthesiser (ser.corpora.demo):
no recordings ship with any installed package, nothing may be downloaded, and CI has no
espeak. Silero rates that voice as speech with probability ~1 (checked below), so the
tests can place utterances at known times and check where the segments come out.

The ground truth of an utterance is where its 10 ms frame energy exceeds -45 dBFS; the
synthesiser's own noise floor lies at -56 to -68 dBFS.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from predict_helpers import floor, place

from ser import segments
from ser.audio import resample
from ser.segments import Segment, SegmentationError

SR = 16000
#: Room-noise level between utterances (within the synthesiser's noise floor range).
FLOOR_DBFS = -60.0
#: Boundary tolerance. Onsets are usually found within a frame or two; offsets lag by up
#: to ~0.2 s because Silero's probability decays slowly after speech stops (measurements
#: in the ser.segments docstring; 489 placements over 4 generator seeds and 3 sample
#: rates stayed within 0.24 s).
TOL_S = 0.3


def _active(y: np.ndarray, sr: int = SR) -> np.ndarray:
    frame = int(0.01 * sr)
    n = len(y) // frame
    energy = np.mean(y[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(energy + 1e-12) > -45.0


def _longest_pause_s(y: np.ndarray) -> float:
    """Longest run of quiet 10 ms frames between the first and last active one."""
    act = _active(y)
    on = np.flatnonzero(act)
    longest = run = 0
    for a in act[on[0]:on[-1] + 1]:
        run = 0 if a else run + 1
        longest = max(longest, run)
    return longest * 0.01


def _trim(y: np.ndarray) -> np.ndarray:
    """The utterance without its leading and trailing silence."""
    on = np.flatnonzero(_active(y))
    return y[on[0] * int(0.01 * SR):(on[-1] + 1) * int(0.01 * SR)]


@pytest.fixture(scope="module")
def fluent(tmp_path_factory) -> list[np.ndarray]:
    """Trimmed synthetic utterances without internal pauses longer than 0.12 s.

    Pausing is part of the synthesiser's emotional style (slow sad speech pauses for up
    to ~0.45 s); those clips are legitimately split by a VAD, so tests that expect one
    segment per utterance use only fluent ones.
    """
    from ser.corpora import demo

    root = demo.generate(tmp_path_factory.mktemp("speech") / "corpus", n_speakers=2,
                         sentences=("TIE", "ITH", "IEO"), seed=0, sr=SR)
    clips = []
    for path in sorted(root.glob("*.wav")):
        y, sr = sf.read(path, dtype="float32")
        assert sr == SR
        if _longest_pause_s(y) <= 0.12:
            clips.append(_trim(y))
    assert len(clips) >= 8, "the synthesiser produced too few fluent clips for these tests"
    return clips


def test_empty_input_gives_nothing():
    assert segments.speech_segments(np.zeros(0, np.float32), SR) == []
    times, probs = segments.frame_speech_probs(np.zeros(0, np.float32), SR)
    assert times.shape == probs.shape == (0,)
    assert segments.speech_ratio(np.zeros(0, np.float32), SR) == 0.0


def test_digital_silence_gives_nothing():
    y = np.zeros(3 * SR, np.float32)
    assert segments.speech_segments(y, SR) == []
    _, probs = segments.frame_speech_probs(y, SR)
    assert len(probs) == 94 and not probs.any()  # ceil(3 s / 32 ms)


@pytest.mark.parametrize("colour", ["white", "brown"])
@pytest.mark.parametrize("level_dbfs", [-40.0, -15.0])
def test_noise_only_gives_nothing(colour, level_dbfs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6 * SR)
    if colour == "brown":  # rumble: integrated noise, with its drift removed
        x = np.cumsum(x)
        x -= np.convolve(x, np.ones(1600) / 1600, mode="same")
    y = (x / x.std() * 10 ** (level_dbfs / 20)).astype(np.float32)
    assert segments.speech_segments(y, SR) == []
    assert segments.speech_ratio(y, SR) < 0.02


def test_sub_frame_input_works():
    y = floor(0.01, seed=0)  # 160 samples: less than one 512-sample frame
    times, probs = segments.frame_speech_probs(y, SR)
    assert len(times) == len(probs) == 1
    assert segments.speech_segments(y, SR) == []


# --------------------------------------------------------------------------------------
# Finding speech
# --------------------------------------------------------------------------------------


def test_synthetic_voice_is_speech_to_the_vad(fluent):
    y, [(a, b)] = place([0.8, fluent[0], 0.8])
    times, probs = segments.frame_speech_probs(y, SR)
    assert np.allclose(np.diff(times), segments.FRAME_SECONDS)
    assert len(probs) == int(np.ceil(len(y) / 512))
    assert 0.0 <= probs.min() and probs.max() <= 1.0
    inside = (times > a + 0.1) & (times < b - 0.1)
    outside = (times < a - 0.2) | (times > b + 0.4)
    assert np.median(probs[inside]) > 0.9
    assert probs[outside].max() < 0.2


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100])
def test_two_utterances_give_two_segments_at_the_right_times(fluent, sr):
    y, truth = place([1.0, fluent[1], 1.5, fluent[2], 1.0])
    if sr != SR:
        y = resample(y, SR, sr)
    segs = segments.speech_segments(y, sr, pad_s=0.0)
    assert len(segs) == 2, segs
    for seg, (a, b) in zip(segs, truth):
        assert abs(seg.start_s - a) <= TOL_S, (seg, a, b)
        assert abs(seg.end_s - b) <= TOL_S, (seg, a, b)


def test_padding_widens_segments_but_stays_inside_the_clip(fluent):
    y, _ = place([0.05, fluent[3], 1.5, fluent[4], 1.0])
    bare = segments.speech_segments(y, SR, pad_s=0.0)
    padded = segments.speech_segments(y, SR, pad_s=0.1)
    assert len(bare) == len(padded) == 2
    # The first utterance starts 0.05 s in: padding stops at 0.
    assert padded[0].start_s == pytest.approx(max(0.0, bare[0].start_s - 0.1), abs=1e-3)
    assert padded[0].end_s == pytest.approx(bare[0].end_s + 0.1, abs=1e-3)
    assert padded[1].start_s == pytest.approx(bare[1].start_s - 0.1, abs=1e-3)
    assert padded[1].end_s <= len(y) / SR
    # A huge pad stops half-way across the pause instead of merging the two.
    wide = segments.speech_segments(y, SR, pad_s=5.0)
    assert len(wide) == 2 and wide[0].end_s <= wide[1].start_s
    assert wide[0].start_s == 0.0 and wide[1].end_s == pytest.approx(len(y) / SR)


def test_pauses_shorter_than_min_silence_are_merged(fluent):
    y, truth = place([1.0, fluent[5], 0.6, fluent[6], 1.0])
    assert len(segments.speech_segments(y, SR, max_segment_s=None)) == 2
    merged = segments.speech_segments(y, SR, min_silence_s=1.0, max_segment_s=None)
    assert len(merged) == 1
    assert abs(merged[0].start_s - truth[0][0]) <= TOL_S
    assert abs(merged[0].end_s - truth[1][1]) <= TOL_S


def test_min_speech_drops_short_segments(fluent):
    y, [(a, b)] = place([1.0, fluent[0], 1.0])
    assert len(segments.speech_segments(y, SR)) == 1
    assert segments.speech_segments(y, SR, min_speech_s=(b - a) + 1.0) == []


def test_long_utterance_is_split_into_near_equal_parts(fluent):
    parts: list[np.ndarray | float] = [0.5]
    speech = 0.0
    for clip in fluent * 3:  # continuous speech: only 0.1 s breaths between sentences
        parts += [clip, 0.1]
        speech += len(clip) / SR + 0.1
        if speech >= 12.0:
            break
    parts[-1] = 0.5
    y, truth = place(parts)
    whole = segments.speech_segments(y, SR, max_segment_s=None)
    assert len(whole) == 1, whole
    assert whole[0].duration_s >= 12.0

    split = segments.speech_segments(y, SR, max_segment_s=5.0, min_segment_s=1.0)
    k = int(np.ceil(whole[0].duration_s / 5.0))
    assert len(split) == k
    assert split[0].start_s == whole[0].start_s and split[-1].end_s == whole[0].end_s
    for left, right in zip(split[:-1], split[1:]):
        assert left.end_s == right.start_s  # contiguous: no speech lost at a cut
    lengths = [s.duration_s for s in split]
    assert max(lengths) <= 5.0 + 1e-9 and min(lengths) >= 1.0
    # Near-equal: each cut lies within 25 % of a part's length of its equal split point,
    # so no part is more than 50 % longer or shorter than the equal length.
    equal = whole[0].duration_s / k
    assert all(abs(n - equal) <= 0.5 * equal + 1e-6 for n in lengths), lengths

    # Cuts prefer quiet moments: every cut lands on a frame quieter than the median.
    frame = int(segments.FRAME_SECONDS * SR)
    n = len(y) // frame
    db = 10 * np.log10(np.mean(y[: n * frame].reshape(n, frame).astype(np.float64) ** 2,
                               axis=1) + 1e-12)
    hop = segments.FRAME_SECONDS
    inside = db[int(whole[0].start_s / hop):int(whole[0].end_s / hop)]
    for seg in split[:-1]:
        assert db[int(seg.end_s / hop)] < np.median(inside)


def test_split_respects_tight_limits(fluent):
    y, _ = place([0.3, *fluent[:4], 0.3])  # ~7-9 s of continuous speech
    for max_s, min_s in [(2.0, 1.0), (3.0, 0.5), (1.0, 0.0)]:
        segs = segments.speech_segments(y, SR, max_segment_s=max_s, min_segment_s=min_s)
        assert segs
        assert all(min_s - 1e-9 <= s.duration_s <= max_s + 1e-9 for s in segs), segs


def test_precomputed_probs_give_the_same_segments(fluent):
    y, _ = place([1.0, fluent[1], 1.5, fluent[2], 1.0])
    _, probs = segments.frame_speech_probs(y, SR)
    assert segments.speech_segments(y, SR, probs=probs) == segments.speech_segments(y, SR)
    with pytest.raises(ValueError, match="frames"):
        segments.speech_segments(y, SR, probs=probs[:-3])


def test_speech_ratio_and_slices(fluent):
    y, [(a, b)] = place([2.0, fluent[0], 2.0])
    ratio = segments.speech_ratio(y, SR)
    assert abs(ratio - (b - a) / (len(y) / SR)) < 0.1
    segs = segments.speech_segments(y, SR)
    [piece] = segments.slice_segments(y, SR, segs)
    assert len(piece) == pytest.approx(segs[0].duration_s * SR, abs=1)
    assert segs[0].as_dict()["duration_s"] == pytest.approx(segs[0].duration_s)


def test_segment_dataclass():
    s = Segment(1.25, 3.5)
    assert s.duration_s == 2.25
    assert s.as_dict() == {"start_s": 1.25, "end_s": 3.5, "duration_s": 2.25}


# --------------------------------------------------------------------------------------
# Process-level behaviour
# --------------------------------------------------------------------------------------


def test_concurrent_calls_match_sequential_ones(fluent):
    # Streamlit serves each session from its own thread; the stateful model is shared.
    clips = [place([0.7, fluent[i], 1.0, fluent[i + 1], 0.7])[0] for i in range(4)]
    expected = [segments.speech_segments(y, SR) for y in clips]
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results.setdefault(i, []).append(segments.speech_segments(clips[i], SR))
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, runs in results.items():
        assert all(r == expected[i] for r in runs)


def test_does_not_change_torch_thread_count(fluent):
    import torch

    before = torch.get_num_threads()
    segments.speech_segments(place([0.5, fluent[0], 0.5])[0], SR)
    assert torch.get_num_threads() == before
    assert "silero_vad" not in sys.modules  # its __init__ would set 1 thread globally


def test_missing_package_raises_a_clear_error(monkeypatch, fluent):
    # Make the package unfindable and forget the loaded model, as on a machine without it.
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    monkeypatch.setattr(segments, "_model", None)
    y = place([0.5, fluent[0], 0.5])[0]
    with pytest.raises(SegmentationError, match="silero-vad"):
        segments.speech_segments(y, SR)
    with pytest.raises(SegmentationError, match="pip install"):
        segments.frame_speech_probs(y, SR)


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.0},
    {"threshold": 0.5, "neg_threshold": 0.7},
    {"pad_s": -0.1},
    {"max_segment_s": 0.0},
    {"max_segment_s": 2.0, "min_segment_s": 1.5},
])
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        segments.speech_segments(floor(1.0, seed=0), SR, **kwargs)


def test_bad_audio_is_rejected():
    with pytest.raises(ValueError, match="mono"):
        segments.speech_segments(np.zeros((2, SR), np.float32), SR)
    with pytest.raises(ValueError, match="NaN"):
        segments.speech_segments(np.full(SR, np.nan, np.float32), SR)
    with pytest.raises(ValueError, match="sample rate"):
        segments.speech_segments(np.zeros(SR, np.float32), 0)


def test_fixed_segments_cover_the_clip_in_equal_parts():
    assert segments.fixed_segments(0.0, 5.0) == []
    assert segments.fixed_segments(3.0, 5.0) == [Segment(0.0, 3.0)]
    parts = segments.fixed_segments(12.3, 5.0)
    assert len(parts) == 3 and parts[0].start_s == 0.0 and parts[-1].end_s == 12.3
    assert all(a.end_s == b.start_s for a, b in zip(parts[:-1], parts[1:]))
    assert all(abs(p.duration_s - 4.1) < 1e-3 for p in parts)
    with pytest.raises(ValueError):
        segments.fixed_segments(3.0, 0.0)

"""Copy a corpus as if each speaker had been recorded through their own, unheard chain.

    python benchmarks/chain_copy.py SRC DEST [--seed 0] [--sr 16000]

Every clip of SRC is decoded, passed through a recording chain (`ser.augment.channel_chain`:
a smooth random EQ, a room one time in two, a μ-law phone line one time in four,
background noise at 5–30 dB SNR one time in two) and written to DEST as a 16-bit WAV with
the same relative path and name (other files, such as the README and label tables, are
copied as they are), so the same corpus adapter reads the copy. The chain is drawn once
per *speaker* (seeded by ``--seed`` and the speaker id), so all of a speaker's clips share
it — a visitor's phone, room and line — while speakers differ from each other.
``--sr`` resamples as a browser recording would (16 kHz; 0 keeps the decoded rate).

Run `benchmarks/enrolment.py` on DEST to see what an unheard chain does to a model, with
and without the speaker's own takes (recorded through the same chain):

    python benchmarks/enrolment.py CNN VOICE CNN+VOICE --corpus tess=DEST --ks 0,10
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config  # noqa: E402
from ser.audio import load_audio  # noqa: E402
from ser.augment import channel_chain  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402


def speaker_rng(seed: int, speaker: str) -> np.random.Generator:
    """The same generator state for every clip of ``speaker``: one chain per speaker."""
    return np.random.default_rng([int(seed), zlib.crc32(str(speaker).encode())])


def chain_copy(src: Path, dest: Path, *, seed: int = 0, sr: int = 16000) -> int:
    """Write the chained copy of corpus ``src`` to ``dest``; returns the clips written."""
    src, dest = Path(src).resolve(), Path(dest).resolve()
    if dest == src or src in dest.parents:
        raise SystemExit("DEST must be outside SRC")
    corpus = load_corpus(src)
    speakers = {str(Path(p).resolve()): str(s) for p, s in
                zip(corpus.manifest["path"], corpus.manifest["speaker"])}
    exts = {e.lower() for e in config.AUDIO_EXTENSIONS}
    for f in sorted(src.rglob("*")):  # labels, READMEs, tables: as they are
        if f.is_file() and f.suffix.lower() not in exts:
            (dest / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / f.relative_to(src))
    written = 0
    for path, speaker in tqdm(sorted(speakers.items()), desc="chain copy", unit="clip"):
        y, rate = load_audio(path, sr=sr or None)
        out = channel_chain(y, rate, speaker_rng(seed, speaker))
        target = (dest / Path(path).relative_to(src)).with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        sf.write(tmp, np.clip(out, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
        tmp.replace(target)
        written += 1
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sr", type=int, default=16000)
    args = ap.parse_args(argv)
    n = chain_copy(Path(args.src), Path(args.dest), seed=args.seed, sr=args.sr)
    print(f"{n} clips written to {args.dest}, one recording chain per speaker "
          f"(seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One-off: give bundles written before card checksums (format 1) a ``card_sha256``.

    python scripts/rechecksum_bundles.py models/            # every */model.pt below
    python scripts/rechecksum_bundles.py runs/RUN/model.pt  # one file

For each file the weights digest is checked first (a damaged file is left alone), the
tensors are re-stored unchanged (same dtype, same bytes), the card gains the format-2 stamp
and its checksum, and both ``model.pt`` and its ``card.json`` are replaced atomically. The
model is then loaded through `ser.bundle.load_bundle` and must give exactly the outputs the
old file gave on a fixed input; otherwise the old file is put back.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.bundle import (  # noqa: E402
    FORMAT,
    card_path,
    load_bundle,
    sign_card,
    weights_digest,
)
from ser.fileio import atomic_write_bytes, write_json  # noqa: E402
from ser.models import create_model  # noqa: E402


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    x = model.example_input(batch=2)
    with torch.inference_mode():
        return model(*x) if isinstance(x, tuple) else model(x)


def upgrade(path: Path) -> str:
    old_bytes = path.read_bytes()
    obj = torch.load(io.BytesIO(old_bytes), map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        return "skipped: not a bundle"
    card, state = json.loads(obj["card"]), obj["state_dict"]
    if weights_digest(state) != card.get("weights_sha256"):
        return "skipped: weights do not match their digest"
    if card.get("card_sha256") and card.get("format_version") == 2:
        load_bundle(path)
        return "already checksummed"
    old = create_model(card["arch"], **card.get("model_kwargs", {}))
    old.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    old.eval()
    before = _outputs(old)
    card = sign_card(card)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "card": json.dumps(card), "state_dict": state}, buf)
    atomic_write_bytes(path, buf.getvalue())
    side = card_path(path)
    old_side = side.read_bytes() if side.exists() else None
    write_json(side, card)
    try:
        after = _outputs(load_bundle(path).model)
        if not torch.equal(before, after):
            raise RuntimeError("outputs changed")
    except Exception:
        atomic_write_bytes(path, old_bytes)
        if old_side is not None:
            atomic_write_bytes(side, old_side)
        raise
    return "upgraded; outputs identical"


def main(argv: list[str]) -> int:
    targets: list[Path] = []
    for a in argv or ["models"]:
        p = Path(a)
        targets += sorted(p.glob("*/model.pt")) + sorted(p.glob("*.pt")) if p.is_dir() else [p]
    failed = 0
    for t in targets:
        try:
            print(f"{t}: {upgrade(t)}")
        except Exception as err:  # noqa: BLE001 - report and go on to the next file
            failed += 1
            print(f"{t}: FAILED ({type(err).__name__}: {err})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

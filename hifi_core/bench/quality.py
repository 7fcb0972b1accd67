"""Quality benchmark: every method on the same triplets, PSNR and SSIM against the truth.

Inputs are `hifi_core.triplet.Triplet`s (made from 8-bit frames); each method gets them as [1, 3, H, W]
float in [0, 1] and its output is rounded to 8 bit before scoring, exactly like the truth
(`hifi_core.metrics.psnr` / `ssim` on [0, 255]-rounded RGB). A method that fails on a
triplet is recorded with its error and left out of that triplet's averages, never fatal.

Outputs (in `out_dir`): `quality.json` (every score, per-clip and overall means, notes),
`quality.md` (tables) and, per data group, `quality_worst_<group>.png`: the cases where the
primary method (the first HiFI variant, else the first method) scores lowest, one row each
with the inputs overlaid, every method's output, the truth and the primary method's error map.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..errors import HiFIInputError
from . import report
from ..triplet import Triplet, to_uint8
from .peers import Method, from_uint8_hwc, to_uint8_hwc

GROUP_CAPTIONS = {
    "tuning": "Real footage from `shared/data/clips` (the project's tuning/validation data: the "
              "model may have been tuned on these clips, so these numbers are not independent).",
    "evaluation": "Held-out evaluation videos shipped by other packages (never used for training "
                  "or tuning).",
    "synthetic": "Synthetic stress set: a layer cut from a photo moving over a photo background by "
                 "a known displacement (given at 1080p; `px` = at the benchmark size).",
    "quick": "Tiny generated clips (--quick smoke test; not a quality measurement).",
}


@dataclass(frozen=True)
class QualityOptions:
    """Knobs of the quality run.

    Attributes:
        worst: rows of each worst-case contact sheet.
        tile_width: width of each contact-sheet tile in px.
    """

    worst: int = 4
    tile_width: int = 256

    def __post_init__(self) -> None:
        if self.worst < 0 or self.tile_width < 16:
            raise HiFIInputError(f"worst={self.worst} must be >= 0 and tile_width={self.tile_width} >= 16")


def metrics_description() -> str:
    """How PSNR and SSIM are computed (from hifi_core.metrics' own docs)."""
    from .. import metrics

    paragraphs = (metrics.__doc__ or "").strip().split("\n\n")
    return " ".join(" ".join(p.split()) for p in paragraphs[1:2]) or "see hifi_core.metrics"


def score(prediction: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
    """PSNR (dB) and SSIM of two uint8 [H, W, 3] RGB images."""
    from ..metrics import psnr, ssim

    pred_t, truth_t = from_uint8_hwc(prediction), from_uint8_hwc(truth)
    return {"psnr": float(psnr(pred_t, truth_t)), "ssim": float(ssim(pred_t, truth_t))}


def _mean(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if values else None


def primary_method(methods: Sequence[Method]) -> Method:
    return next((m for m in methods if m.kind == "hifi"), methods[0])


def evaluate(methods: Sequence[Method], triplets: Iterable[Triplet], *,
             worst: int = 4, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run every method on every triplet.

    Returns:
        {"records": [...], "worst": {group: [case rows with images]}} where each record is
        {group, source, case, gap, meta, method, psnr, ssim, seconds, error}.
    """
    if not methods:
        raise HiFIInputError("no method to benchmark: every requested method was unavailable")
    primary = primary_method(methods)
    records: List[Dict[str, Any]] = []
    worst_rows: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
    for triplet in triplets:
        f0, f2 = triplet.frame0[None], triplet.frame2[None]
        truth = to_uint8(triplet.target)
        outputs: Dict[str, np.ndarray] = {}
        for method in methods:
            record = {"group": triplet.group, "source": triplet.source, "case": triplet.case,
                      "gap": triplet.gap, "meta": triplet.meta, "method": method.name,
                      "psnr": None, "ssim": None, "seconds": None, "error": None}
            try:
                start = time.perf_counter()
                pred = method(f0, f2, triplet.tau)
                record["seconds"] = time.perf_counter() - start
                outputs[method.name] = to_uint8_hwc(pred)
                record.update(score(outputs[method.name], truth))
            except Exception as error:  # noqa: BLE001 - one failing peer must not stop the run
                record["error"] = f"{type(error).__name__}: {error}"
            records.append(record)
        line = "  ".join(f"{r['method']}={report.fmt(r['psnr'])}" for r in records[-len(methods):])
        log(f"[quality] {triplet.group}/{triplet.source}/{triplet.case}: {line}")
        key = next(r for r in records[-len(methods):] if r["method"] == primary.name)["psnr"]
        if worst > 0 and key is not None:
            rows = worst_rows[triplet.group]
            rows.append({"psnr": key, "triplet": triplet, "truth": truth, "outputs": outputs})
            rows.sort(key=lambda r: r["psnr"])
            del rows[worst:]
    return {"records": records, "worst": dict(worst_rows), "primary": primary.name}


def summarise(records: Sequence[Dict[str, Any]], methods: Sequence[str]) -> Dict[str, Any]:
    """Means per (group, source, gap) and per (group, gap) for every method."""
    per_source: Dict[tuple, Dict[str, Dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    per_group: Dict[tuple, Dict[str, Dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        if r["psnr"] is None:
            continue
        sub = r["gap"] if r["gap"] is not None else r["case"]
        for table, key in ((per_source, (r["group"], r["source"], sub)), (per_group, (r["group"], sub))):
            for metric in ("psnr", "ssim", "seconds"):
                table[key][r["method"]][metric].append(r[metric])

    def means(table):
        out = []
        for key, by_method in table.items():
            row = {"key": list(key), "methods": {}}
            for name in methods:
                values = by_method.get(name)
                row["methods"][name] = None if not values else {
                    "psnr": _mean(values["psnr"]), "ssim": _mean(values["ssim"]),
                    "seconds": _mean(values["seconds"]), "n": len(values["psnr"])}
            out.append(row)
        return out

    return {"per_source": means(per_source), "overall": means(per_group)}


def _cell(entry: Optional[Dict[str, Any]]) -> str:
    if entry is None:
        return "—"
    return f"{report.fmt(entry['psnr'])} / {report.fmt(entry['ssim'], 3)}"


def _tables(summary: Dict[str, Any], methods: Sequence[str], groups: Sequence[str]) -> List[str]:
    sections = []
    for group in groups:
        caption = GROUP_CAPTIONS.get(group, f"Data group `{group}`.")
        if group == "synthetic":
            rows = []
            for row in summary["per_source"]:
                g, scene, case = row["key"]
                if g == group:
                    rows.append([scene, case] + [_cell(row["methods"][m]) for m in methods])
            by_d = [r for r in summary["overall"] if r["key"][0] == group]
            for row in by_d:
                rows.append(["**all scenes**", row["key"][1]] + [_cell(row["methods"][m]) for m in methods])
            header = ["scene", "displacement @1080p"] + methods
        else:
            rows = []
            for row in summary["per_source"]:
                g, source, gap = row["key"]
                if g == group:
                    n = max((e["n"] for e in row["methods"].values() if e), default=0)
                    rows.append([source, gap, n] + [_cell(row["methods"][m]) for m in methods])
            for row in summary["overall"]:
                if row["key"][0] == group:
                    n = max((e["n"] for e in row["methods"].values() if e), default=0)
                    rows.append(["**overall**", row["key"][1], n] + [_cell(row["methods"][m]) for m in methods])
            header = ["clip", "gap", "triplets"] + methods
        sections.append(f"### Quality: {group}\n\n" + report.markdown_table(
            header, rows, caption + " Cells: PSNR dB / SSIM (higher is better)."))
        times = []
        for row in summary["overall"]:
            if row["key"][0] == group:
                for m in methods:
                    e = row["methods"][m]
                    if e:
                        times.append((m, e["seconds"]))
        if times:
            per_method: Dict[str, List[float]] = defaultdict(list)
            for m, t in times:
                per_method[m].append(t)
            sections.append("Mean time per frame in this group: " + ", ".join(
                f"{m} {np.mean(t):.3f} s" for m, t in per_method.items()) + "\n")
    return sections


def write_contact_sheets(out_dir: Path, worst: Dict[str, List[Dict[str, Any]]],
                         methods: Sequence[str], primary: str, tile_width: int) -> List[Path]:
    paths = []
    for group, rows in worst.items():
        sheet_rows = []
        for row in rows:
            t: Triplet = row["triplet"]
            overlay = to_uint8((t.frame0 + t.frame2) / 2)
            tiles = [("inputs overlaid", overlay)]
            tiles += [(m, row["outputs"][m]) for m in methods if m in row["outputs"]]
            tiles.append(("ground truth", row["truth"]))
            if primary in row["outputs"]:
                tiles.append((f"|error| x4 {primary}", report.error_map(row["outputs"][primary], row["truth"])))
            title = (f"{t.group}/{t.source}/{t.case} ({t.frame0.shape[-1]}x{t.frame0.shape[-2]}): "
                     f"{primary} PSNR {report.fmt(row['psnr'])} dB")
            sheet_rows.append({"title": title, "tiles": tiles})
        path = report.contact_sheet(out_dir / f"quality_worst_{group}.png", sheet_rows, tile_width)
        if path:
            paths.append(path)
    return paths


def run_quality(methods: Sequence[Method], triplet_sources: Dict[str, Iterable[Triplet]],
                out_dir: Path, *, options: QualityOptions = QualityOptions(),
                notes: Sequence[str] = (), dropped: Sequence[str] = (),
                log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Evaluate, summarise and write quality.json / quality.md / contact sheets.

    Args:
        triplet_sources: group name -> triplets (iterables are consumed lazily, in order).
        notes: lines for the report (skipped methods, data provenance, settings).
        dropped: triplets left out (e.g. scene cuts); read after the evaluation, so a list
            that the triplet generators fill while they run may be passed.

    Returns:
        The JSON-able result (also written to out_dir / "quality.json"), with "markdown"
        holding the Markdown section.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in methods]
    start = time.perf_counter()

    def all_triplets():
        for _group, triplets in triplet_sources.items():
            yield from triplets

    result = evaluate(methods, all_triplets(), worst=options.worst, log=log)
    summary = summarise(result["records"], names)
    sheets = write_contact_sheets(out_dir, result["worst"], names, result["primary"], options.tile_width)
    groups = list(dict.fromkeys(r["group"] for r in result["records"]))
    sections = [f"Scores (`hifi_core.metrics`): {metrics_description()}",
                "Methods: " + "; ".join(f"`{m.name}` ({m.detail}, {m.device})" for m in methods)]
    sections += [f"- {n}" for n in notes]
    errors = [r for r in result["records"] if r["error"]]
    if errors:
        sections.append(f"- {len(errors)} method runs failed, e.g. {errors[0]['method']} on "
                        f"{errors[0]['source']}/{errors[0]['case']}: {errors[0]['error']}")
    if dropped:
        sections.append(f"- triplets dropped: {'; '.join(dropped)}")
    sections.append("")
    sections += _tables(summary, names, groups)
    sections += [f"Worst cases for `{result['primary']}`: `{p.name}`\n" for p in sheets]
    markdown = "\n".join(sections)
    data = {"methods": [{"name": m.name, "kind": m.kind, "detail": m.detail, "device": m.device}
                        for m in methods],
            "primary": result["primary"], "metrics": metrics_description(), "notes": list(notes),
            "dropped": list(dropped),
            "records": result["records"], "summary": summary,
            "contact_sheets": [p.name for p in sheets], "seconds": time.perf_counter() - start}
    report.write_json(out_dir / "quality.json", data)
    (out_dir / "quality.md").write_text("## Quality\n\n" + markdown)
    data["markdown"] = markdown
    return data

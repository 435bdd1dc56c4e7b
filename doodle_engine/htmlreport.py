"""One validation run as one HTML page to send: summary, table with reasons, figures, maps.

The page is made from the table a ``validate`` run measured and the figures
:func:`doodle_engine.plots.write_plots` drew from that same run (the rebuilt labels it kept),
never from a second rebuild.  It is self-contained: the figures are embedded as base64 data
URIs, the style sheet is inline, there is no script and no link outside the page, so it
reads the same offline, attached to an e-mail or opened from a disk.
"""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

from .files import atomic_write, result_name, short_name
from .outputs import HTML_GENERATOR
from .reasons import detail, legend
from .report import summarize
from .table import cell_text as _text
from .terminal import TABLE_COLUMNS
from .version import __version__

#: the marker that tells a page this module wrote (one it may replace)

#: file names of the run-wide figures, in the order shown, with their captions
FIGURES = {"accuracy_hist.png": "Pixel accuracy of every result against its stored label",
           "class_iou.png": "Mean IoU per class over the results"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;
max-width:1400px;padding:0 1em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ccc;padding-bottom:.2em}
.meta{color:#555;font-size:.9em}code{background:#f2f2f2;padding:0 .25em;border-radius:3px}
.summary p{margin:.2em 0;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#eef2f7;position:sticky;top:0}
td.text{text-align:left}tr.below{background:#fff4e0}tr.failed{background:#fde2e2}
td.reason{text-align:left;font-weight:600;color:#8a4b00}
dl.why dt{font-weight:600;color:#8a4b00;margin-top:.4em}dl.why dd{margin-left:1.5em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#333}.note{color:#555}
.wide{overflow-x:auto}.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.figs figure{margin:0}
section.failed li{margin:.2em 0}section.failed{border-left:4px solid #d9534f;padding-left:.8em}
"""


def write_html(frame, path, figures=(), summary=(), notes=(), maps=(), command=None,
               resumed=0):
    """Write the page for one validation run, atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        The run's table (with its ``reason`` column: :func:`doodle_engine.reasons.add_reasons`).
    path : path
        The ``.html`` file to write.
    figures : list of path
        The PNG files :func:`doodle_engine.plots.write_plots` wrote from this run; embedded.
    summary : list of str
        The summary lines the run printed under its table.
    notes : list of str
        What the figures left out and why (``write_plots.last_note``).
    maps : list of (path, file, trial)
        Which result each disagreement map shows (``write_plots.last_maps``).
    command : str, optional
        The command line that made the run, shown at the top.
    resumed : int
        How many of the rows ``--resume`` kept from an earlier run of the same options.

    Returns
    -------
    pathlib.Path
    """
    text = page(frame, figures, summary, notes, maps, command, resumed)
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def page(frame, figures=(), summary=(), notes=(), maps=(), command=None, resumed=0):
    """The page's HTML text (see :func:`write_html`)."""
    figures = [Path(f) for f in figures]
    anchors = _anchors(frame)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{HTML_GENERATOR}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_title(frame))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(_title(frame))}</h1>",
        (f'<p class="meta">doodle-engine {_e(__version__)}, {_e(when)}'
         + (f"; command: <code>{_e(command)}</code>" if command else "") + "</p>"),
        f'<p class="meta">{_e(_provenance(frame, resumed))}</p>',
        _summary_section(frame, summary), _failed_section(frame, anchors),
        _table_section(frame, anchors, maps),
        _why_section(frame), _figures_section(figures, notes),
        _maps_section(figures, maps, frame, anchors), "</body></html>"]
    return "\n".join(p for p in parts if p)


def _provenance(frame, resumed):
    """Where the page's numbers come from: this one run, or partly rows --resume kept."""
    if not resumed:
        return ("Every number, figure and map on this page comes from this one run: the maps "
                "show the very labels the table measured.")
    if resumed >= len(frame):
        return (f"All {len(frame)} results were measured by an earlier run with the same options "
                "(the table's options column) and kept by --resume; the figures are drawn from "
                "them, and a kept result has no disagreement map.")
    return (f"{resumed} of the {len(frame)} results were measured by an earlier run with the "
            "same options and kept by --resume (the table's options column says which); the "
            "others, every figure and every map come from this run, and the maps show the very "
            "labels the table measured (a kept result has no map).")


def _title(frame):
    ok = _ok(frame)
    files = ok["file"].nunique() if "file" in ok else 0
    failed = len(_failed(frame))
    return (f"doodle-engine validate: {len(ok)} result(s) from {files} file(s)"
            + (f"; {failed} file(s) failed" if failed else ""))


def _failed(frame):
    return frame[frame["error"].map(_text) != ""] if "error" in frame else frame.iloc[:0]


def _failed_section(frame, anchors):
    """The files that gave no result and why, near the top (their table rows end in the
    error, which a wide table puts out of sight)."""
    failed = _failed(frame)
    if not len(failed):
        return ""
    out = [f'<section class="failed"><h2>Failed: {len(failed)} file(s)</h2><ul>']
    out += [f'<li><a href="#{anchors[i]}">{_e(short_name(row.get("file")))}</a>: '
            f'{_e(row.get("error"))}</li>' for i, row in failed.iterrows()]
    return "\n".join(out + ["</ul></section>"])


def _ok(frame):
    return frame[frame["error"] == ""] if "error" in frame else frame


def _e(value):
    return html.escape(str(value), quote=True)


def _anchors(frame):
    """An element id per table row: ``r<row number>``."""
    return {i: f"r{n}" for n, i in enumerate(frame.index)}


def _summary_section(frame, summary):
    out = ['<section class="summary"><h2>Summary</h2>']
    out += [f"<p>{_e(line)}</p>" for line in summary]
    ok = _ok(frame)
    if len(ok) and "accuracy" in ok:
        rec = summarize(frame)
        cols = [c for c in ("record", "files", "results", "mpx", "median_accuracy", "worst_accuracy",
                            "worst_file", "seconds") if c in rec]
        out.append('<div class="wide"><table><tr>' + "".join(f"<th>{_e(c)}</th>" for c in cols)
                   + "</tr>")
        for _, row in rec.iterrows():
            out.append("<tr>" + "".join(_cell(c, row.get(c)) for c in cols) + "</tr>")
        out.append("</table></div>")
    return "\n".join(out + ["</section>"])


def _table_section(frame, anchors, maps):
    cols = [c for c in TABLE_COLUMNS if c in frame and (
        c in ("file", "accuracy", "reason") or frame[c].map(_text).ne("").any())]
    mapped = {(str(f), str(t or "")): Path(p).stem for p, f, t in maps}
    out = [('<section><h2>Results</h2><p class="note">One row per result (file, and earlier '
            "trial where asked); rows below 100 % are shaded and give their reason.</p>"),
           '<div class="wide"><table><tr>' + "".join(f"<th>{_e(c)}</th>" for c in cols)
           + "<th>map</th></tr>"]
    for i, row in frame.iterrows():
        failed = bool(_text(row.get("error")))
        below = not failed and _number(row.get("accuracy")) < 1
        klass = ' class="failed"' if failed else (' class="below"' if below else "")
        cells = "".join(_cell(c, row.get(c)) for c in cols)
        key = (str(row.get("file")), _text(row.get("trial")))
        link = f'<a href="#{mapped[key]}">map</a>' if key in mapped else ""
        out.append(f'<tr id="{anchors[i]}"{klass}>{cells}<td class="text">{link}</td></tr>')
    out.append("</table></div></section>")
    return "\n".join(out)


def _why_section(frame):
    causes = legend(frame)
    if not causes:
        return ""
    out = ['<section><h2>What the reasons mean</h2><p class="note">The causes of the results '
           "below 100 %, and what the rebuild did (given at 100 % too).</p>"
           '<dl class="why">']
    for short, sentence in causes.items():
        out.append(f"<dt>{_e(short)}</dt><dd>{_e(detail(short, sentence))}</dd>")
    return "\n".join(out + ["</dl></section>"])


def _figures_section(figures, notes):
    shown = [f for name in FIGURES for f in figures if f.name == name]
    if not shown and not notes:
        return ""
    out = ['<section><h2>Figures</h2><div class="figs">']
    out += [_figure(f, FIGURES[f.name], f.stem) for f in shown]
    out += ["</div>"] + [f'<p class="note">{_e(n)}</p>' for n in notes]
    return "\n".join(out + ["</section>"])


def _maps_section(figures, maps, frame, anchors):
    if not maps:
        return ""
    by_key = {(str(r.get("file")), _text(r.get("trial"))): (i, r) for i, r in frame.iterrows()}
    out = [('<section><h2>Disagreement maps</h2><p class="note">Image, stored label '
            "(Doodler), rebuilt label, and where they differ (magenta), worst first.</p>")]
    present = {f.resolve() for f in figures}
    for p, file, trial in maps:
        p = Path(p)
        if p.resolve() not in present:
            continue
        i, row = by_key.get((str(file), str(trial or "")), (None, {}))
        name = result_name(file, trial)
        caption = (f"{name}: {int(_number(row.get('differ'))):,} px differ, "
                   f"{_number(row.get('accuracy')):.4%} agree" if len(row) else name)
        why = _text(row.get("reason")) if len(row) else ""
        caption += f" - why: {why}" if why else ""
        back = f' (<a href="#{anchors[i]}">row</a>)' if i is not None else ""
        out.append(_figure(p, caption, p.stem, back))
    return "\n".join(out + ["</section>"])


def _figure(path, caption, anchor, extra=""):
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure id="{_e(anchor)}"><img alt="{_e(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_e(caption)}{extra}'
            "</figcaption></figure>")


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _cell(column, value):
    """One table cell, formatted as the terminal table formats it."""
    text = _text(value)
    if column == "file" and text:
        return f'<td class="text" title="{_e(text)}">{_e(short_name(text))}</td>'
    if column == "reason":
        return f'<td class="reason">{_e(text)}</td>'
    if column in ("accuracy", "accuracy_min", "accuracy_median", "accuracy_max",
                  "median_accuracy", "worst_accuracy") and text:
        return f"<td>{_number(value):.4%}</td>"
    if column in ("differ", "height", "width", "runner_up_extra_px", "files") and text:
        return f"<td>{int(_number(value)):,}</td>"
    if column in ("mean_iou", "kappa", "mpx") and text:
        return f"<td>{_number(value):.4f}</td>"
    if column == "seconds" and text:
        return f"<td>{_number(value):.2f}</td>"
    if column == "worst_file" and text:
        return f'<td class="text">{_e(short_name(text))}</td>'
    return f'<td class="text">{_e(text)}</td>'
